"""Read-your-writes by WAL position: the signed token across instances, the per-process memory."""

from __future__ import annotations

import uuid

import httpx

from app.platform.config import Settings
from app.platform.db.consistency import TOKEN_COOKIE, TOKEN_HEADER, TokenCodec
from app.platform.db.lsn import lsn_to_int
from tests.helpers import wait_for
from tests.platform.db.conftest import client, one_replica, routes, running, wait_paused
from tools.pgstack import Stack


async def _create(app_client: httpx.AsyncClient, body: str) -> tuple[int, str]:
    resp = await app_client.post("/_test/notes", json={"body": body})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.headers[TOKEN_HEADER]


async def _replicated(app_client: httpx.AsyncClient, note_id: int, body: str) -> None:
    async def seen() -> bool:
        resp = await app_client.get(f"/_test/notes/{note_id}")
        return bool(resp.json() == {**resp.json(), "body": body, "served_by": "replica"})

    await wait_for(seen, timeout=10)


async def test_token_reads_own_write_while_replay_is_paused(
    routing_settings: Settings, replay_paused: Stack
) -> None:
    writer, other = uuid.uuid4(), uuid.uuid4()
    # Two instances: the token, not one process's memory, carries read-your-writes across them.
    async with (
        running(routing_settings) as app1,
        running(routing_settings) as app2,
        client(app1, writer) as w1,
        client(app2, writer) as w2,
        client(app2, other) as o2,
    ):
        # A note everyone has seen, then replay stops.
        replay_paused.replica.psql("SELECT pg_wal_replay_resume()")
        note_id, _ = await _create(w1, "v1")
        await _replicated(o2, note_id, "v1")
        replay_paused.replica.psql("SELECT pg_wal_replay_pause()")
        await wait_paused(replay_paused)

        resp = await w1.put(f"/_test/notes/{note_id}", json={"body": "v2"})
        assert resp.status_code == 200, resp.text
        token = resp.headers[TOKEN_HEADER]

        before = routes("primary", "token_not_replayed")
        resp = await w2.get(f"/_test/notes/{note_id}", headers={TOKEN_HEADER: token})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "body": "v2",
            "served_by": "primary",
            "target": "primary",
            "reason": "token_not_replayed",
            "port": replay_paused.primary_port,
        }
        assert routes("primary", "token_not_replayed") == before + 1

        # Another user, no token: the replica serves it, still showing the old row.
        resp = await o2.get(f"/_test/notes/{note_id}")
        assert resp.json() == {
            "body": "v1",
            "served_by": "replica",
            "target": "replica",
            "reason": "replica",
            "port": replay_paused.replica_port,
        }

        replay_paused.replica.psql("SELECT pg_wal_replay_resume()")

        async def back_on_replica() -> dict[str, object] | None:
            r = await w2.get(f"/_test/notes/{note_id}", headers={TOKEN_HEADER: token})
            assert r.status_code == 200, r.text
            return r.json() if r.json()["served_by"] == "replica" else None

        body = await wait_for(back_on_replica, timeout=10)
        assert body == {
            "body": "v2",
            "served_by": "replica",
            "target": "replica",
            "reason": "replica",
            "port": replay_paused.replica_port,
        }


async def test_process_remembers_a_users_write_without_the_token(
    routing_settings: Settings, replay_paused: Stack
) -> None:
    user = uuid.uuid4()
    await wait_paused(replay_paused)
    async with (
        running(routing_settings) as app1,
        running(routing_settings) as app2,
        client(app1, user) as c1,
        client(app2, user) as c2,
    ):
        note_id, _ = await _create(c1, "mine")
        c1.cookies.clear()  # a client that ignores the token altogether
        resp = await c1.get(f"/_test/notes/{note_id}")
        assert resp.json() == {
            "body": "mine",
            "served_by": "primary",
            "target": "primary",
            "reason": "recent_write_not_replayed",
            "port": replay_paused.primary_port,
        }
        # Only the process that took the write remembers it; elsewhere the replica answers.
        resp = await c2.get(f"/_test/notes/{note_id}")
        assert resp.json()["served_by"] == "replica"
        assert resp.json()["body"] is None


async def test_memory_expires(notes_table: Stack) -> None:
    # Long enough that the first read surely comes within it, even on a busy machine.
    settings = one_replica(notes_table, db_read_your_writes_seconds=5.0)
    user = uuid.uuid4()
    notes_table.replica.psql("SELECT pg_wal_replay_pause()")
    try:
        await wait_paused(notes_table)
        async with running(settings) as app, client(app, user) as c:
            note_id, _ = await _create(c, "soon forgotten")
            c.cookies.clear()
            assert (await c.get(f"/_test/notes/{note_id}")).json()["served_by"] == "primary"

            async def forgotten() -> bool:
                resp = await c.get(f"/_test/notes/{note_id}")
                return bool(resp.json()["served_by"] == "replica")

            await wait_for(forgotten, timeout=60, interval=0.2)
    finally:
        notes_table.replica.psql("SELECT pg_wal_replay_resume()")


async def test_tampered_token_goes_to_the_primary_without_error(
    routing_settings: Settings,
) -> None:
    async with running(routing_settings) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            note_id, token = await _create(writer, "t")
        await _replicated(anonymous, note_id, "t")
        forged = token[:-1] + ("A" if token[-1] != "A" else "B")
        codec_other = TokenCodec("another secret entirely, at least 32 chars")
        for bad in (forged, "not-a-token", "", "x" * 500, codec_other.encode(2**40)):
            before = routes("primary", "token_invalid")
            resp = await anonymous.get(f"/_test/notes/{note_id}", headers={TOKEN_HEADER: bad})
            assert resp.status_code == 200, (bad, resp.text)
            assert resp.json()["body"] == "t"
            if bad:
                assert resp.json()["served_by"] == "primary", bad
                assert resp.json()["reason"] == "token_invalid"
                assert routes("primary", "token_invalid") == before + 1
        # The same through the cookie.
        anonymous.cookies.set(TOKEN_COOKIE, forged)
        resp = await anonymous.get(f"/_test/notes/{note_id}")
        assert resp.status_code == 200
        assert resp.json()["reason"] == "token_invalid"


async def test_write_response_carries_header_and_httponly_cookie(
    routing_settings: Settings, notes_table: Stack
) -> None:
    primary = notes_table.primary
    async with running(routing_settings) as app, client(app, uuid.uuid4()) as c:
        before = lsn_to_int(primary.psql("SELECT pg_current_wal_insert_lsn()::text"))
        resp = await c.post("/_test/notes", json={"body": "cookie"})
        after = lsn_to_int(primary.psql("SELECT pg_current_wal_insert_lsn()::text"))
        token = resp.headers[TOKEN_HEADER]
        assert len(token) == 27
        codec = TokenCodec(routing_settings.secret_key.get_secret_value())
        lsn = codec.decode(token)
        # The primary's position after the commit: past everything before the request.
        assert lsn is not None
        assert before < lsn <= after
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith(f"{TOKEN_COOKIE}={token};")
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Path=/" in cookie
        # The cookie comes back by itself; reading after replication lands on the replica.
        note_id = resp.json()["id"]
        await _replicated(c, note_id, "cookie")

        # Reads and failed writes issue no token.
        resp = await c.get(f"/_test/notes/{note_id}")
        assert TOKEN_HEADER not in resp.headers
        assert "set-cookie" not in resp.headers
        resp = await c.post(f"/_test/notes/{note_id}/fail")
        assert resp.status_code == 404
        assert TOKEN_HEADER not in resp.headers
        assert (await c.get(f"/_test/notes/{note_id}")).json()["body"] == "cookie"


async def test_textual_statements_issue_a_token_only_when_they_wrote(
    routing_settings: Settings,
) -> None:
    async with running(routing_settings) as app, client(app) as c:
        resp = await c.post("/_test/notes/textual", json={"body": "write"})
        assert resp.status_code == 200
        assert TOKEN_HEADER in resp.headers
        resp = await c.post("/_test/notes/textual", json={"body": "read"})
        assert resp.status_code == 200
        assert TOKEN_HEADER not in resp.headers
