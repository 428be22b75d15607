"""Whether an access token still speaks for its account: auth's side of the PrincipalCheck port."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.modules.auth.repository import token_is_current
from app.platform.security import Principal


async def principal_is_current(engine: AsyncEngine, principal: Principal) -> bool:
    """One primary-key read and one index probe, on a connection held for that statement only."""
    async with engine.connect() as conn:
        return await token_is_current(
            conn, principal.user_id, principal.epoch, principal.session_id
        )
