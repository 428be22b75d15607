"""mypy refuses to write through the read session: ``add``, ``flush``, ``commit`` and DML on it
are type errors, while every read, and both sessions in a read's place, type-check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each line that must fail ends with "# error: <mypy error code>"; every other line must pass.
SNIPPET = '''\
"""Uses of the read session, good and bad."""

import uuid

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.auth.models import User
from app.modules.auth.repository import UserReads
from app.modules.notifications.service import NotificationReader
from app.platform.db import AsyncReadSession
from app.platform.db.routing import RoutedReadSession
from app.platform.web.sessions import ReadSession


async def reads(session: AsyncReadSession) -> None:
    row = (await session.execute(select(User.id, User.email))).one()
    email: str = row[1]
    user: User | None = await session.scalar(select(User).where(User.id == uuid.uuid4()))
    users: list[User] = list((await session.scalars(select(User))).all())
    found: User | None = await session.get(User, uuid.uuid4())
    both = select(User.id).union_all(select(User.id))
    ids: list[uuid.UUID] = list((await session.scalars(both)).all())
    await session.execute(text("SELECT 1"))
    async for _ in await session.stream(select(User)):
        pass
    del email, user, users, found, ids


async def writes(session: AsyncReadSession) -> None:
    session.add(User())  # error: attr-defined
    await session.flush()  # error: attr-defined
    await session.commit()  # error: attr-defined
    await session.delete(User())  # error: attr-defined
    await session.execute(insert(User).values(email="x"))  # error: call-overload
    await session.execute(update(User).values(email="x"))  # error: call-overload
    await session.execute(delete(User))  # error: call-overload
    await session.execute(insert(User).values(email="x").returning(User.id))  # error: call-overload


async def in_a_handler(session: ReadSession) -> None:
    await reads(session)
    session.add(User())  # error: attr-defined


async def through_the_read_services(session: AsyncReadSession) -> None:
    await UserReads(session).user_by_id(uuid.uuid4())
    NotificationReader(session).session.add(User())  # error: attr-defined


async def both_sessions_read(primary: AsyncSession, routed: RoutedReadSession) -> None:
    await reads(primary)
    await reads(routed)
    await UserReads(primary).list_users(10, None)
'''


def _expected(snippet: str) -> set[tuple[int, str]]:
    marked = re.compile(r"# error: ([a-z-]+)$")
    return {
        (number, match.group(1))
        for number, line in enumerate(snippet.splitlines(), start=1)
        if (match := marked.search(line))
    }


def test_mypy_refuses_writes_on_the_read_session_and_accepts_reads(tmp_path: Path) -> None:
    probe = tmp_path / "read_session_probe.py"
    probe.write_text(SNIPPET)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            # The cache of its own: the suite may run while `make lint` writes the project's.
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            str(probe),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reported = {
        (int(number), code)
        for number, code in re.findall(
            r"^[^\n]*read_session_probe\.py:(\d+): error: .*\[([a-z-]+)\]$",
            result.stdout,
            re.M,
        )
    }
    assert reported == _expected(SNIPPET), result.stdout + result.stderr
    assert len(reported) == 10
