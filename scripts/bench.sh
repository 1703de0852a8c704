#!/usr/bin/env bash
# Benchmarks (not part of the tests): write path with pgbench, drain rate vs
# the receiver's ceiling, commit-to-receipt latency, backlog growth, soak. All
# figures of one table are measured side by side in the same run.
# Usage: scripts/bench.sh [write|queue|log|retention|drain|million|databases|neighbour|backlog|latency|ratelimit|soak|citus]   (default: all)
# citus runs only against a PostgreSQL with Citus installed: WEBHOOK_PG_BIN=<its bin dir> (the extension is installed there too).
# BENCH_QUEUE_SECS (8) sets the queue runs' length, BENCH_QUEUE_CONF adds settings to its cluster (an experiment: "fsync = off").
# BENCH_DRAIN_CONF adds settings to the drain's cluster with default settings (an experiment: "webhook.batch_size = 2000").
# BENCH_LOG_ROWS (10000000) sizes the log; BENCH_LATENCY_LOG (1000000) the log beside the last latency run; BENCH_SOAK_SECS (600 alone, 120 in the full run) and BENCH_SOAK_RATE (2000) size the soak.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# PgQ, the durable queue the write path is measured against (queue).
dpkg -s postgresql-15-pgq3 >/dev/null 2>&1 || apt-get install -y -q postgresql-15-pgq3 >/dev/null 2>&1 || true
echo "==> building and installing webhook_emitter (release)" >&2
# A new file, not the old one rewritten in place (a running cluster maps it).
rm -f "$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/webhook_emitter.so"
cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null
if [ -n "${WEBHOOK_PG_BIN:-}" ] && [ "$WEBHOOK_PG_BIN" != /usr/lib/postgresql/15/bin ]; then
    scripts/install.sh --release "$WEBHOOK_PG_BIN/pg_config" >/dev/null
fi
cargo build --release -q -p webhook_emitter_e2e --bin bench
exec target/release/bench "$@"
