#!/usr/bin/env bash
# Runs every test of webhook_emitter: the Rust unit tests and in-database
# #[pg_test]s (cargo pgrx test), then the end-to-end tests against throwaway
# clusters with the extension preloaded and real HTTP receivers.
# Works on a fresh Debian machine as root; installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
scripts/deps.sh
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

# Postgres refuses to run as root: pgrx runs it as "postgres" in a data
# directory whose parent that user can write.
PGRX_TEST_DIR=/tmp/webhook_emitter_pgrx_test
rm -rf "$PGRX_TEST_DIR"
mkdir -p "$PGRX_TEST_DIR"
chown postgres "$PGRX_TEST_DIR"
echo "==> unit and in-database tests (cargo pgrx test)"
cargo pgrx test pg15 --runas postgres --pgdata "$PGRX_TEST_DIR/data" 2>&1 | tee -a "$LOG"

echo "==> installing the extension into PostgreSQL 15"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null

echo "==> end-to-end tests (real clusters, real receivers)"
cargo test -p webhook_emitter_e2e --test '*' -- --test-threads=2 2>&1 | tee -a "$LOG"

# One closing line over both runners.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$LOG"
