"""auth's own listeners (subscribed in app/bootstrap.py): the work a request must not do inline."""

from __future__ import annotations

from app.modules.auth.interface import PasswordResetAsked
from app.modules.auth.service import AuthPorts, PasswordResetLinks
from app.platform.config import Settings
from app.platform.events import Delivery


class AuthListeners:
    def __init__(self, settings: Settings, ports: AuthPorts | None = None) -> None:
        self.settings = settings
        self.ports = ports or AuthPorts()

    async def on_password_reset_asked(self, event: PasswordResetAsked, delivery: Delivery) -> None:
        links = PasswordResetLinks(delivery.session, self.settings, ports=self.ports)
        await links.issue(event.email)
