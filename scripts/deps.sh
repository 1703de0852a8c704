#!/usr/bin/env bash
# Installs what building and testing webhook_emitter needs, when missing:
# Debian's PostgreSQL 15 (server + headers), clang (for bindgen), cargo-pgrx
# 0.18.1, and pgrx's PG15 configuration. Idempotent; run as root.
set -euo pipefail
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
missing=()
[ -x "$PG_CONFIG" ] || missing+=(postgresql-15)
[ -f /usr/include/postgresql/15/server/postgres.h ] || missing+=(postgresql-server-dev-15)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-contrib)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.1'; then
    echo "==> installing cargo-pgrx 0.18.1 (about 5 minutes)"
    cargo install cargo-pgrx --version 0.18.1 --locked
fi
if ! grep -qs "pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init --pg15 "$PG_CONFIG"
fi
