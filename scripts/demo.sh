#!/usr/bin/env bash
# The webhook_emitter demo: builds and installs the extension, starts a
# throwaway PostgreSQL 15 with it preloaded and a local receiver, creates
# three webhooks (JSON; XML with Basic auth; custom template with a signing
# secret), tells a short LMS story in plain SQL, and shows what the receiver
# got and the delivery log. Cleans up after itself; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BIN=/usr/lib/postgresql/15/bin
DIR=/tmp/webhook_emitter_demo
PORT=54329
RECV_PORT=18089

cleanup() {
    [ -d "$DIR/data" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    [ -n "${RECV_PID:-}" ] && kill "$RECV_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
cleanup
trap cleanup EXIT

echo "==> building and installing webhook_emitter (release)"
cargo pgrx install --release --pg-config "$BIN/pg_config" >/dev/null

echo "==> starting a throwaway PostgreSQL 15 on port $PORT with the extension preloaded"
mkdir -p "$DIR" && chown postgres "$DIR"
runuser -u postgres -- "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
cat >> "$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'webhook_emitter'
webhook.allowed_hosts = '127.0.0.1'
CONF
runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w start >/dev/null
PSQL=(psql -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)

echo "==> starting a local receiver on 127.0.0.1:$RECV_PORT"
python3 scripts/receiver.py "$RECV_PORT" "$DIR/received.jsonl" &
RECV_PID=$!
sleep 0.5

"${PSQL[@]}" <<SQL
CREATE EXTENSION webhook_emitter;
SELECT webhook.set_tenant_id('acme-academy');
\echo
\echo '==> the topic catalog'
SELECT topic, display_name, source FROM webhook.topics ORDER BY source DESC, topic;
\echo '==> three webhooks'
SELECT webhook.create_webhook('CRM (JSON)', 'http://127.0.0.1:$RECV_PORT/crm',
    '{user.created,course.enrollment,course.completed,sale.new}') AS crm_json;
SELECT webhook.create_webhook('ERP (XML, Basic auth)', 'http://127.0.0.1:$RECV_PORT/erp',
    '{sale.new,order.placed,order.failed,order.refunded,payment.pending}',
    content_type => 'application/xml', auth_username => 'erp', auth_password => 'erp-secret') AS erp_xml;
SELECT webhook.create_webhook('Chat (template, signed)', 'http://127.0.0.1:$RECV_PORT/chat',
    '{announcement.created,account.created}',
    body_template => '{"text": "[{{\$topic}}] {{announcement_title}}{{email}}", "event": "{{\$event_id}}"}',
    generate_signing_secret => true) AS chat_template;
SELECT id, name, content_type, topics, auth_password, signing_secret FROM webhook.webhook_list ORDER BY id;
SQL

echo "==> the LMS story, in plain SQL on the lms tables"
run() { echo "   - $1"; "${PSQL[@]}" -1 -f "$2"; }
F=tests/e2e/fixtures
run "catalog, staff and students (base data)" "$F/lms_base.sql"
run "a user signs up with groups and roles" "$F/topics/user.created.sql"
run "a student enrolls in a course" "$F/topics/course.enrollment.sql"
run "a student completes a course" "$F/topics/course.completed.sql"
run "a customer buys a course and a test" "$F/topics/sale.new.sql"
run "a pending payment succeeds, then is refunded" "$F/topics/order.refunded.sql"
echo "   - a card payment fails"
"${PSQL[@]}" -1 <<'SQL'
INSERT INTO lms.orders (user_id, status, payment_method, payment_mode)
SELECT id, 'PENDING', 'stripe', 'card' FROM lms.users WHERE email = 'zoe.obrien@academy.example';
SQL
"${PSQL[@]}" -1 -c "UPDATE lms.orders o SET status = 'FAILED' FROM lms.users u WHERE o.user_id = u.id AND u.email = 'zoe.obrien@academy.example' AND o.status = 'PENDING'"
run "an announcement goes out" "$F/topics/announcement.created.sql"

echo "==> waiting for deliveries"
for _ in $(seq 1 50); do
    pending=$("${PSQL[@]}" -At -c "SELECT count(*) FROM webhook.deliveries WHERE status NOT IN ('delivered', 'dead')")
    [ "$pending" = 0 ] && break
    sleep 0.2
done

echo "==> what the receiver got"
python3 - "$DIR/received.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    h = {k.lower(): v for k, v in r["headers"].items()}
    extra = []
    if "authorization" in h: extra.append("auth=" + h["authorization"][:12] + "...")
    if "webhook-signature" in h: extra.append("signed")
    body = r["body"].replace("\n", " ")
    print(f'{r["path"]:6} {h.get("webhook-type", "?"):22} {h.get("content-type", "?"):17} {" ".join(extra):22} {body[:110]}')
PY

"${PSQL[@]}" <<'SQL'
\echo
\echo '==> the delivery log (SQL)'
SELECT d.id, w.name AS webhook, e.topic, d.status, d.attempts, d.last_status_code AS code,
       round(a.duration_ms::numeric, 1) AS ms
FROM webhook.deliveries d
JOIN webhook.events e ON e.id = d.event_id
JOIN webhook.webhooks w ON w.id = d.webhook_id
LEFT JOIN webhook.attempts a ON a.delivery_id = d.id
ORDER BY d.id;
\echo '==> per-webhook health'
SELECT name, attempts_24h, success_rate_pct, round(latency_p50_ms::numeric, 1) AS p50_ms, backlog FROM webhook.webhook_health;
\echo '==> Send Test'
SELECT status_code, duration_ms::int AS ms, error FROM webhook.send_test(2, 'order.placed');
SQL
echo "==> done; cleaning up"
