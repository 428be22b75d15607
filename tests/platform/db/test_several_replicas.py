"""Two replicas: reads spread over both, a caller's write is honoured per replica, one replica
down leaves reads on the other, /readyz and the metrics tell them apart."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client import REGISTRY

from app.platform.config import Settings
from app.platform.db.consistency import TOKEN_HEADER, TokenCodec
from tests.helpers import wait_for
from tests.platform.db.conftest import client, gauge, routes, running, wait_paused
from tools.pgstack import Node, Stack

READS = 40

# The notes read's statement, as pg_stat_statements keeps it (normalised, with its tag comment).
_CALLS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
    "WHERE query LIKE '%inet_server_port()%FROM test_routing_note%'"
)


def _calls(node: Node) -> int:
    return int(node.psql(_CALLS, db="app"))


def _verifications(node: Node) -> int:
    """How often ``node`` was asked how far it has replayed, by a read (not by its monitor)."""
    return int(
        node.psql(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query LIKE 'SELECT pg_last_wal_replay_lsn()::text%'",
            db="app",
        )
    )


def _served(name: str) -> float:
    return REGISTRY.get_sample_value("db_replica_reads_total", {"replica": name}) or 0.0


async def _write(writer: httpx.AsyncClient, body: str) -> tuple[int, str]:
    resp = await writer.post("/_test/notes", json={"body": body})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.headers[TOKEN_HEADER]


async def _replayed(node: Node, settings: Settings, token: str) -> None:
    lsn = TokenCodec(settings.secret_key.get_secret_value()).decode(token)
    assert lsn is not None
    target = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"

    async def done() -> bool:
        return node.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "t"

    await wait_for(done, timeout=30)


async def test_reads_spread_over_both_replicas(two_replicas: Settings, notes_table: Stack) -> None:
    first, second = notes_table.replicas
    async with running(two_replicas) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            note_id, token = await _write(writer, "spread")
        for node in (first, second):
            await _replayed(node, two_replicas, token)
        names = [monitor.name for monitor in app.state.db.monitors]
        assert names == [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
        calls = {node.name: _calls(node) for node in (first, second)}
        served = {name: _served(name) for name in names}
        ports: Counter[int] = Counter()
        for _ in range(READS):
            resp = await anonymous.get(f"/_test/notes/{note_id}")
            assert resp.status_code == 200, resp.text
            assert (resp.json()["body"], resp.json()["served_by"]) == ("spread", "replica")
            ports[resp.json()["port"]] += 1

    # In turn: each replica takes its share, and nothing the primary serves.
    assert set(ports) == {first.port, second.port}, ports
    assert min(ports.values()) >= READS // 4, ports
    # Each server saw them itself, and the app's per-replica count agrees with what it served.
    for node in (first, second):
        assert _calls(node) - calls[node.name] >= ports[node.port], node.name
    for name, node in zip(names, (first, second), strict=True):
        assert _served(name) - served[name] == ports[node.port], name


@pytest.fixture(params=[0, 1], ids=["first-behind", "second-behind"])
def one_paused(request: pytest.FixtureRequest, notes_table: Stack) -> Iterator[int]:
    """Replay paused on one of the two replicas (its index); always resumed."""
    behind = int(request.param)
    node = notes_table.replicas[behind]
    node.psql("SELECT pg_wal_replay_pause()")
    try:
        yield behind
    finally:
        node.psql("SELECT pg_wal_replay_resume()")


async def test_a_replica_behind_the_callers_write_is_never_chosen_while_the_other_has_it(
    two_replicas: Settings, notes_table: Stack, one_paused: int
) -> None:
    behind, ahead = notes_table.replicas[one_paused], notes_table.replicas[1 - one_paused]
    async with (
        running(two_replicas) as app,
        client(app, uuid.uuid4()) as writer,
        client(app) as anonymous,
    ):
        # A note both replicas have, then replay stops on one.
        behind.psql("SELECT pg_wal_replay_resume()")
        note_id, token = await _write(writer, "v1")
        for node in (behind, ahead):
            await _replayed(node, two_replicas, token)
        behind.psql("SELECT pg_wal_replay_pause()")
        await wait_paused(notes_table, one_paused)
        resp = await writer.put(f"/_test/notes/{note_id}", json={"body": "v2"})
        token = resp.headers[TOKEN_HEADER]
        await _replayed(ahead, two_replicas, token)
        # The paused replica is healthy (a few bytes behind): still in turn for everyone else.
        states = await app.state.db.monitors.check()
        assert [state.healthy for state in states] == [True, True]

        other = uuid.uuid4()
        async with client(app, other) as reader:
            ports = set()
            for _ in range(READS // 2):
                r = await reader.get(f"/_test/notes/{note_id}", headers={TOKEN_HEADER: token})
                assert r.status_code == 200, r.text
                body = r.json()
                assert (body["body"], body["target"], body["reason"]) == (
                    "v2",
                    "replica",
                    "replica",
                )
                ports.add(body["port"])
        # Every read with the token on the replica that has it, none on the one that has not.
        assert ports == {ahead.port}
        # Without a token both replicas serve; the paused one answers with what it has.
        anonymous_bodies: Counter[tuple[int, str]] = Counter()
        for _ in range(READS // 2):
            r = (await anonymous.get(f"/_test/notes/{note_id}")).json()
            anonymous_bodies[(r["port"], r["body"])] += 1
        assert {port for port, _ in anonymous_bodies} == {behind.port, ahead.port}
        assert (behind.port, "v2") not in anonymous_bodies
        assert (behind.port, "v1") in anonymous_bodies

        # Both behind the token: only the primary has it.
        ahead.psql("SELECT pg_wal_replay_pause()")
        try:
            await wait_paused(notes_table, 1 - one_paused)
            resp = await writer.put(f"/_test/notes/{note_id}", json={"body": "v3"})
            token = resp.headers[TOKEN_HEADER]
            before = routes("primary", "token_not_replayed")
            r = await anonymous.get(f"/_test/notes/{note_id}", headers={TOKEN_HEADER: token})
            assert (r.json()["body"], r.json()["port"]) == ("v3", notes_table.primary_port)
            assert r.json()["reason"] == "token_not_replayed"
            assert routes("primary", "token_not_replayed") == before + 1
        finally:
            ahead.psql("SELECT pg_wal_replay_resume()")


async def test_each_replica_is_asked_itself_when_no_check_vouches_for_it(
    two_replicas: Settings, notes_table: Stack, one_paused: int
) -> None:
    """Both monitors' last word predates the write, and the paused replica's is the later one:
    it is asked first, says no, and the read goes to the other, which is asked in turn."""
    behind, ahead = notes_table.replicas[one_paused], notes_table.replicas[1 - one_paused]
    quiet = two_replicas.model_copy(update={"db_replica_check_interval_seconds": 3600.0})
    async with running(quiet) as app, client(app, uuid.uuid4()) as writer:
        behind.psql("SELECT pg_wal_replay_resume()")
        note_id, token = await _write(writer, "v1")
        for node in (behind, ahead):
            await _replayed(node, two_replicas, token)
        behind.psql("SELECT pg_wal_replay_pause()")
        await wait_paused(notes_table, one_paused)
        await app.state.db.monitors.check()
        resp = await writer.put(f"/_test/notes/{note_id}", json={"body": "v2"})
        token = resp.headers[TOKEN_HEADER]
        await _replayed(ahead, two_replicas, token)
        lsn = TokenCodec(two_replicas.secret_key.get_secret_value()).decode(token)
        assert lsn is not None
        monitors = app.state.db.monitors.all
        paused, other = monitors[one_paused], monitors[1 - one_paused]
        # What the monitors believe (no check runs meanwhile): the paused replica furthest.
        other._state = replace(other.state, replay_lsn=paused.state.replay_lsn - 1)
        assert not paused.replayed(lsn)
        assert not other.replayed(lsn)
        asked = _verifications(behind), _verifications(ahead)
        async with client(app, uuid.uuid4()) as reader:
            r = await reader.get(f"/_test/notes/{note_id}", headers={TOKEN_HEADER: token})
        assert (r.json()["body"], r.json()["port"], r.json()["reason"]) == (
            "v2",
            ahead.port,
            "replica",
        )
        assert (_verifications(behind), _verifications(ahead)) == (asked[0] + 1, asked[1] + 1)
        # The answer is kept: the next reader with that token is not asked again.
        assert other.replayed(lsn)


@pytest.fixture
def second_restored(notes_table: Stack) -> Iterator[Node]:
    node = notes_table.replicas[1]
    try:
        yield node
    finally:
        node.start()


async def test_one_replica_down_its_reads_go_to_the_other_without_an_error(
    two_replicas: Settings, notes_table: Stack, second_restored: Node
) -> None:
    first = notes_table.replicas[0]
    async with running(two_replicas) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            note_id, token = await _write(writer, "steady")
        for node in notes_table.replicas:
            await _replayed(node, two_replicas, token)
        results: list[httpx.Response] = []
        stopped = asyncio.Event()

        async def reader(count: int) -> None:
            for _ in range(count):
                results.append(await anonymous.get(f"/_test/notes/{note_id}"))
                await asyncio.sleep(0.005 if stopped.is_set() else 0.02)

        async def stopper() -> None:
            async def started() -> bool:
                return len(results) >= READS

            await wait_for(started, timeout=30, interval=0.005)
            await asyncio.to_thread(second_restored.stop)
            stopped.set()

        await asyncio.gather(stopper(), *(reader(READS) for _ in range(4)))

        assert len(results) == 4 * READS
        failures = [r for r in results if r.status_code != 200 or r.json()["body"] != "steady"]
        assert failures == []
        # Never the primary: a read that met the dying replica moved to the other one.
        assert {r.json()["served_by"] for r in results} == {"replica"}
        ports = [r.json()["port"] for r in results]
        assert second_restored.port in ports[: READS // 2]
        assert set(ports[-READS:]) == {first.port}

        _assert_one_down(
            (await anonymous.get("/readyz")), f"127.0.0.1:{first.port}", second_restored.port
        )
        assert gauge("db_replica_healthy", app, 0) == 1
        assert gauge("db_replica_healthy", app, 1) == 0

        await asyncio.to_thread(second_restored.start)

        async def both_again() -> bool:
            r = (await anonymous.get("/readyz")).json()
            return bool(r["status"] == "ok")

        await wait_for(both_again, timeout=60)
        assert gauge("db_replica_healthy", app, 1) == 1


def _assert_one_down(ready: httpx.Response, up: str, down_port: int) -> None:
    """/readyz with one replica up and the other down: degraded, still 200, each one named."""
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    by_name = {r["name"]: r for r in body["checks"]["replicas"]}
    down = f"127.0.0.1:{down_port}"
    assert (by_name[up]["status"], by_name[up]["healthy"]) == ("up", True)
    assert (by_name[down]["status"], by_name[down]["healthy"]) == ("down", False)
    assert by_name[down]["error"]
    summary = body["checks"]["replica"]
    assert (summary["status"], summary["healthy"], summary["serving"]) == ("partial", False, [up])
    assert summary["routing"] == "replica"


async def test_readyz_reports_each_replica(two_replicas: Settings, notes_table: Stack) -> None:
    async with running(two_replicas) as app, client(app) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    names = [f"127.0.0.1:{node.port}" for node in notes_table.replicas]
    replicas = body["checks"]["replicas"]
    assert [r["name"] for r in replicas] == names
    for replica in replicas:
        assert (replica["status"], replica["healthy"], replica["in_recovery"]) == ("up", True, True)
        assert isinstance(replica["lag_bytes"], int)
    summary = body["checks"]["replica"]
    assert (summary["status"], summary["healthy"], summary["serving"]) == ("up", True, names)
    assert summary["error"] is None
