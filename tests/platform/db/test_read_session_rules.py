"""The read session never writes, locks or commits, on whichever node it landed."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from sqlalchemy import select, text, update

from app.platform.config import Settings
from app.platform.db.routing import ReadOnlySessionError
from tests.platform.db.conftest import client, notes, running


@pytest.mark.parametrize("replica_reads", [True, False])
async def test_writes_and_locks_fail_loudly(
    routing_settings: Settings, replica_reads: bool
) -> None:
    settings = routing_settings.model_copy(update={"db_replica_reads": replica_reads})
    async with running(settings) as app:
        db = app.state.db
        expected_target = "replica" if replica_reads else "primary"
        for statement in (
            select(notes).with_for_update(),
            update(notes).values(body="never"),
            text("UPDATE test_routing_note SET body = 'never'"),
        ):
            async with db.read_session() as session:
                with pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only transaction"):
                    await session.execute(statement)
                assert session.route.target == expected_target
        async with db.read_session() as session:
            with pytest.raises(ReadOnlySessionError):
                await session.commit()
            with pytest.raises(ReadOnlySessionError):
                await session.flush()
        # Through the API it is a 500 for the developer to fix, not a silent lost write.
        async with client(app) as c:
            resp = await c.get("/_test/notes/for-update/1")
            assert resp.status_code == 500
            assert resp.headers["content-type"] == "application/problem+json"
