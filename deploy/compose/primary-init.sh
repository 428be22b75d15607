#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d, when the primary's data volume is empty.
# It mirrors what tools/pgstack.py does for the local stack, so the app sees the same roles,
# extensions and grants whichever way the database was started.
set -Eeuo pipefail

: "${APP_DB_USER:=app}"
: "${APP_DB_PASSWORD:=app}"
: "${APP_DB_NAME:=app}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:=replicator}"
: "${REPLICATION_SLOT:=replica1}"
# One physical slot per replica (space-separated); the first replica's alone by default.
: "${REPLICATION_SLOTS:=$REPLICATION_SLOT}"
: "${EXPORTER_USER:=exporter}"
: "${EXPORTER_PASSWORD:=exporter}"
: "${AUDIT_USER:=app_audit}"
: "${AUDIT_PASSWORD:=app_audit}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" -v app_db="$APP_DB_NAME" \
    -v repl_user="$REPLICATION_USER" -v repl_password="$REPLICATION_PASSWORD" \
    -v exporter_user="$EXPORTER_USER" -v exporter_password="$EXPORTER_PASSWORD" \
    -v audit_user="$AUDIT_USER" -v audit_password="$AUDIT_PASSWORD" <<'SQL'
-- CREATEDB, not superuser: the app owns its database and nothing else.
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password' CREATEDB;
CREATE DATABASE :"app_db" OWNER :"app_user";
-- The app reads replay lag and pg_stat_replication for /readyz and replica routing.
GRANT pg_monitor TO :"app_user";

-- A role that can only stream WAL, so the replica never holds the superuser's password.
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';

-- postgres-exporter reads statistics only.
CREATE ROLE :"exporter_user" LOGIN PASSWORD :'exporter_password';
GRANT pg_monitor TO :"exporter_user";

-- The database audit (python -m app db audit): every statistic, and membership of the app's role
-- so that --verify may build (and drop) an index on the app's tables. Not a superuser.
CREATE ROLE :"audit_user" LOGIN PASSWORD :'audit_password' IN ROLE pg_monitor, :"app_user";
SQL

# A slot per replica keeps the WAL it still needs across its restarts (bounded by
# max_slot_wal_keep_size in the compose command, so a dead replica cannot fill the disk).
for slot in $REPLICATION_SLOTS; do
    # On standard input, not -c: psql substitutes :'slot' only in what it reads as a script.
    echo "SELECT pg_create_physical_replication_slot(:'slot');" |
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v slot="$slot"
done

for db in "$APP_DB_NAME" postgres; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" \
        -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
        -c "GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO \"$AUDIT_USER\""
    # HypoPG checks the audit's index advice; the stock image lacks it (the audit then says so).
    if psql --username "$POSTGRES_USER" --dbname "$db" -tAc \
        "SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'" | grep -q 1; then
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" \
            -c "CREATE EXTENSION IF NOT EXISTS hypopg"
    fi
done

# The image's default pg_hba.conf admits replication from loopback only. samenet is the compose
# network the server sits on, whatever subnet Docker picked for it.
echo "host replication ${REPLICATION_USER} samenet scram-sha-256" >>"$PGDATA/pg_hba.conf"
