"""The email adapters: SMTP against a real (tiny) SMTP server, selection by setting, templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import Message

import pytest

from app.modules.notifications.rendering import RENDERER
from app.modules.notifications.senders import (
    MEMORY_SENDER,
    ConsoleEmailSender,
    Email,
    SmtpEmailSender,
    build_sender,
)
from app.platform.config import Settings
from tests.helpers import make_settings
from tests.modules.notifications.smtp_sink import SmtpSink, serve_smtp
from tools.pgstack import Stack


@pytest.fixture
async def smtp_sink() -> AsyncIterator[tuple[SmtpSink, int]]:
    async with serve_smtp() as served:
        yield served


async def test_smtp_sender_delivers_text_and_html(
    smtp_sink: tuple[SmtpSink, int], migrated: Stack
) -> None:
    sink, port = smtp_sink
    settings = make_settings(migrated, email_backend="smtp", smtp_port=port)
    sender = build_sender(settings)
    assert isinstance(sender, SmtpEmailSender)
    rendered = RENDERER.render("welcome", {"name": "Ada"})
    await sender.send(
        Email(
            to="ada@example.com",
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id="<n1@notifications.invalid>",
        )
    )
    (message,) = sink.messages
    assert sink.envelopes[0][1] == ["<ada@example.com>"]
    assert message["Subject"] == "Welcome, Ada!"
    assert message["Message-ID"] == "<n1@notifications.invalid>"
    assert message["From"] == settings.email_from
    parts = {p.get_content_type(): _text(p) for p in message.walk() if not p.is_multipart()}
    assert "Hello Ada," in parts["text/plain"]
    assert "<h1>Hello Ada,</h1>" in parts["text/html"]


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes), payload
    return payload.decode()


async def test_smtp_sender_raises_when_the_server_is_down(migrated: Stack) -> None:
    from tools.pgstack import free_port

    settings = make_settings(migrated, email_backend="smtp", smtp_port=free_port())
    with pytest.raises(ConnectionRefusedError):
        await build_sender(settings).send(
            Email(to="a@example.com", subject="s", text="t", html="h", message_id="<x@y>")
        )


def test_backend_setting_selects_the_adapter(settings: Settings) -> None:
    assert isinstance(build_sender(settings), ConsoleEmailSender)  # the development default
    assert build_sender(settings.model_copy(update={"email_backend": "memory"})) is MEMORY_SENDER


def test_templates_fail_loudly_on_missing_values() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        RENDERER.render("message", {"title": "only a title"})
    with pytest.raises(KeyError):
        RENDERER.render("no_such_template", {})


@pytest.mark.parametrize(("env", "redacted"), [("development", False), ("staging", True)])
async def test_console_email_never_logs_a_token_link_outside_development(
    env: str, redacted: bool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging refuses the console backend; if one ran there anyway, its links keep no token."""
    import structlog
    from structlog.testing import capture_logs

    from app.modules.notifications import senders

    outside = settings.model_copy(update={"env": env})
    sender = build_sender(outside)
    assert isinstance(sender, ConsoleEmailSender)
    text = "Reset: https://shop.example.com/reset-password?token=SECRET123abc&lang=en"
    with capture_logs() as logs:
        # A logger bound under capture: the module's own may be cached from an earlier app.
        monkeypatch.setattr(senders, "log", structlog.get_logger("app.notifications"))
        await sender.send(
            Email(to="a@example.com", subject="s", text=text, html="h", message_id="<m@x>")
        )
    [line] = [entry for entry in logs if entry["event"] == "email_console"]
    assert ("SECRET123abc" in line["text"]) is not redacted
    if redacted:
        assert "token=[redacted]&lang=en" in line["text"]
