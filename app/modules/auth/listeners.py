"""auth's own listeners (subscribed in app/bootstrap.py): the work a request must not do inline."""

from __future__ import annotations

from app.modules.auth.interface import PasswordResetAsked
from app.modules.auth.service import issue_password_reset
from app.platform.config import Settings
from app.platform.events import Delivery


class AuthListeners:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def on_password_reset_asked(self, event: PasswordResetAsked, delivery: Delivery) -> None:
        await issue_password_reset(delivery.session, self.settings, event.email)
