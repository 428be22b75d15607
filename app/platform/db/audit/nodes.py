"""The nodes the audit reads: the primary and every replica, as the monitoring role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# Every statement the audit sends starts with this, so the audit never audits itself.
TAG = "/*app_audit*/ "


def plain_dsn(url: str) -> str:
    """A libpq URL asyncpg accepts, from a SQLAlchemy one (``postgresql+asyncpg://``)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def with_credentials_of(target: str, credentials: str) -> str:
    """``target``'s host, port and database with the user and password of ``credentials``."""
    t, c = urlsplit(plain_dsn(target)), urlsplit(plain_dsn(credentials))
    user = c.username or ""
    auth = f"{user}:{c.password}@" if c.password else (f"{user}@" if user else "")
    host = t.hostname or "127.0.0.1"
    netloc = f"{auth}{host}:{t.port}" if t.port else f"{auth}{host}"
    return urlunsplit(("postgresql", netloc, t.path, t.query, ""))


@dataclass
class Node:
    """One server the audit is connected to."""

    name: str
    conn: asyncpg.Connection
    is_replica: bool

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self.conn.fetch(TAG + sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(TAG + sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        return str(await self.conn.execute(TAG + sql, *args))


async def connect(name: str, dsn: str, timeout: float = 10.0) -> Node:
    conn = await asyncpg.connect(
        plain_dsn(dsn),
        timeout=timeout,
        server_settings={"application_name": "app-audit", "jit": "off"},
        # The audit prepares each statement once; no cache to keep between them.
        statement_cache_size=0,
    )
    in_recovery = bool(await conn.fetchval(TAG + "SELECT pg_is_in_recovery()"))
    return Node(name, conn, in_recovery)


async def connect_all(primary: str, replicas: list[str]) -> list[Node]:
    nodes = [await connect("primary", primary)]
    try:
        for i, url in enumerate(replicas, start=1):
            nodes.append(await connect("replica" if len(replicas) == 1 else f"replica{i}", url))
    except BaseException:
        await close_all(nodes)
        raise
    return nodes


async def close_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.conn.close()
