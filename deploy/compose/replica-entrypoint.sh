#!/usr/bin/env bash
# The replica's entrypoint: on first start (empty data volume) clone the primary with
# pg_basebackup -R, which writes standby.signal and primary_conninfo, so the official
# entrypoint then finds an existing cluster and starts it as a streaming hot standby.
# Later starts skip straight to the official entrypoint.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:=postgres-primary}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:=replicator}"
: "${REPLICATION_SLOT:=replica1}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"

    # depends_on already waits for the primary's health check; this covers a primary that is
    # healthy but restarting, and a `docker compose up postgres-replica` run on its own.
    for _ in $(seq 1 60); do
        pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" && break
        echo "replica: waiting for ${PRIMARY_HOST}:${PRIMARY_PORT}" >&2
        sleep 1
    done

    echo "replica: cloning ${PRIMARY_HOST}:${PRIMARY_PORT} with pg_basebackup" >&2
    # As postgres: the server refuses a data directory owned by anyone else. The password goes
    # through the environment, and -R copies it into primary_conninfo for streaming.
    gosu postgres env PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
        --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" \
        --pgdata="$PGDATA" --write-recovery-conf --slot="$REPLICATION_SLOT" \
        --wal-method=stream --checkpoint=fast --no-password
fi

exec docker-entrypoint.sh "$@"
