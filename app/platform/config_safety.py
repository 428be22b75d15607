"""What production refuses in the settings: development secrets, short ones, adapters that send or
charge nothing real, a link base that is not a public https URL."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

# Chosen by whoever issues them (the mail provider), not by us: their length is not ours to set.
EXTERNALLY_ISSUED_SECRETS = frozenset({"smtp_password"})
MIN_SECRET_LENGTH = 32


def weak_secrets(settings: Any, defaults: Mapping[str, str]) -> list[str]:
    """Every secret setting that is a development default or shorter than the minimum."""
    problems: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if not isinstance(value, SecretStr) or name in EXTERNALLY_ISSUED_SECRETS:
            continue
        env_name = f"APP_{name.upper()}"
        secret = value.get_secret_value()
        if defaults.get(env_name) == secret:
            problems.append(f"{env_name} is the development secret: set your own")
        elif len(secret) < MIN_SECRET_LENGTH:
            problems.append(f"{env_name} is shorter than {MIN_SECRET_LENGTH} characters")
    return problems


def unsafe_adapters(settings: Any) -> list[str]:
    """Adapters that charge or send nothing real, and a link base users cannot reach."""
    problems: list[str] = []
    if settings.payments_provider == "fake" and not (
        settings.env == "staging" and settings.payments_allow_fake_provider
    ):
        problems.append(
            "APP_PAYMENTS_PROVIDER=fake charges nothing real (a staging demo may allow it "
            "with APP_PAYMENTS_ALLOW_FAKE_PROVIDER=true)"
        )
    if settings.email_backend in ("console", "memory"):
        problems.append(f"APP_EMAIL_BACKEND={settings.email_backend} sends no email: use smtp")
    url = urlsplit(settings.public_base_url)
    if url.scheme != "https" or not url.hostname or _is_loopback(url.hostname):
        problems.append(
            "APP_PUBLIC_BASE_URL must be an https URL of a public host (links in emails "
            f"point there), not {settings.public_base_url!r}"
        )
    return problems


def _is_loopback(host: str) -> bool:
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
