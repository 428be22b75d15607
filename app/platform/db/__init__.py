"""The database layer: engines for primary and replica, sessions, the declarative ``Base``."""

from app.platform.db.base import Base
from app.platform.db.engines import Database
from app.platform.db.session import PrimarySession, ReadSession

__all__ = ["Base", "Database", "PrimarySession", "ReadSession"]
