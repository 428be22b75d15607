"""The email sender port and its adapters: console (development), SMTP, in-memory (tests)."""

from __future__ import annotations

import asyncio
import re
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from app.platform.config import Settings
from app.platform.observability.logging import get_logger

log = get_logger("app.notifications")


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    # Stable per notification: a resent message carries the same id, so mail systems can
    # recognise the duplicate an at-least-once retry may produce.
    message_id: str
    sender: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def to_mime(self, default_sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender or default_sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Message-ID"] = self.message_id
        message["Date"] = formatdate(localtime=False, usegmt=True)
        for name, value in self.headers.items():
            message[name] = value
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


class EmailSender(Protocol):
    """Sends one email or raises; ``backend`` names the adapter in delivery records."""

    backend: str

    async def send(self, email: Email) -> None: ...


# A link's secret part: the value of any query parameter whose name says token, code or key.
_TOKEN_IN_LINK = re.compile(r"([?&][A-Za-z_]*(?:token|code|key)[A-Za-z_]*=)[^\s&#\"'<>]+", re.I)


def redact_links(text: str) -> str:
    """``text`` with the tokens of its links replaced, so a log line cannot act for the user."""
    return _TOKEN_IN_LINK.sub(r"\1[redacted]", text)


class ConsoleEmailSender:
    """Development: the email is written to the log instead of being sent.

    The settings refuse this backend outside development and test; should it run anywhere else
    (``redact=True``), the links' tokens (verification, password reset) are not logged.
    """

    backend = "console"

    def __init__(self, *, redact: bool = False) -> None:
        self.redact = redact

    async def send(self, email: Email) -> None:
        log.info(
            "email_console",
            to=email.to,
            subject=email.subject,
            message_id=email.message_id,
            text=redact_links(email.text) if self.redact else email.text,
        )


class MemoryEmailSender:
    """Tests: keeps every email in ``sent``; ``fail_next`` makes the next sends raise."""

    backend = "memory"

    def __init__(self) -> None:
        self.sent: list[Email] = []
        self.fail_next = 0

    async def send(self, email: Email) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("the in-memory mail server is down (as asked)")
        self.sent.append(email)

    def to(self, address: str) -> list[Email]:
        return [e for e in self.sent if e.to == address]


class SmtpEmailSender:
    """SMTP (Mailpit locally). The standard library's blocking client runs in a thread.

    Email is low-volume next to HTTP traffic, so a thread per send costs little, keeps the event
    loop free, and avoids another dependency; the socket timeout bounds a stuck server.
    """

    backend = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.timeout = settings.smtp_timeout_seconds
        self.default_sender = settings.email_from

    async def send(self, email: Email) -> None:
        await asyncio.to_thread(self._send, email.to_mime(self.default_sender))

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username and self.password is not None:
                smtp.login(self.username, self.password.get_secret_value())
            smtp.send_message(message)


# One per process, so a test can read what the app it started has sent.
MEMORY_SENDER = MemoryEmailSender()


def build_sender(settings: Settings) -> EmailSender:
    if settings.email_backend == "smtp":
        return SmtpEmailSender(settings)
    if settings.email_backend == "memory":
        return MEMORY_SENDER
    return ConsoleEmailSender(redact=not settings.is_dev)
