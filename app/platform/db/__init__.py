"""The database layer: engines for primary and replica, sessions, the declarative ``Base``.

The request-scoped session dependencies are the web layer's (``app/platform/web/sessions.py``).
"""

from app.platform.db.base import Base
from app.platform.db.engines import Database
from app.platform.db.read_session import AsyncReadSession

__all__ = ["AsyncReadSession", "Base", "Database"]
