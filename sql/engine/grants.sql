-- webhook_emitter: the privilege model (run last). docs/security.md says,
-- role by role, what each may do and how it is enforced.
--   PUBLIC        : the topic catalog, the settings, webhooks with secrets
--                   masked (webhook_list), the event schemas and
--                   event_catalog(), the delivery log (deliveries
--                   without the order key, which comes from the body;
--                   attempts without the response excerpt and headers;
--                   outcomes without their argument and error; the
--                   health views; the metrics). Not event bodies, not
--                   passwords, signing secrets, URL tokens or header values,
--                   not what a receiver answered (an echoing receiver would
--                   hand out the request's credentials), no changes.
--   webhook_admin : the management API: webhooks (the full table, secrets
--                   included), events, Send Test, redeliver and replay,
--                   settings, defining topics. It reads the tables and
--                   writes none itself: webhooks, settings and the queue
--                   change through the API's SECURITY DEFINER functions,
--                   the topic catalog and webhook_triggers through the
--                   definition functions, as the extension owner
--                   (webhook.change_topic).
-- LMS application roles need nothing here: the generated triggers run the
-- topic's code as its definer (webhook.emit_topic), and webhook.enqueue is
-- SECURITY DEFINER.

REVOKE ALL ON ALL TABLES IN SCHEMA webhook FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA webhook FROM PUBLIC;
REVOKE ALL ON SCHEMA webhook_triggers FROM PUBLIC;
GRANT USAGE ON SCHEMA webhook TO PUBLIC;

GRANT SELECT ON webhook.topics, webhook.settings, webhook.webhook_list,
    webhook.recent_failures, webhook.webhook_health, webhook.delivery_latency,
    webhook.delivery_counters, webhook.delivery_stats, webhook.log_slots, webhook.in_flight TO PUBLIC;
GRANT SELECT (id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until,
              last_attempt_at, last_status_code, last_error, delivered_at, is_test, created_at)
    ON webhook.deliveries TO PUBLIC;
GRANT SELECT (id, delivery_id, attempt, started_at, duration_ms, status_code, error, webhook_id)
    ON webhook.attempts TO PUBLIC;
GRANT SELECT (id, delivery_id, webhook_id, status, tries, next_try_at, created_at, done_at)
    ON webhook.outcomes TO PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.webhooks_for_topic(text), webhook.topic_wanted(text),
    webhook.redact_url(text), webhook.metrics(), webhook.latency_buckets(),
    webhook.prometheus_label(text), webhook.event_catalog(), webhook.event_schema(text),
    webhook.cluster_rows(regclass, integer), webhook.cluster_metrics(), webhook.citus_node_role(),
    webhook.citus_shard_of(regclass, regclass), webhook.writing_node_state(), webhook.applying_registry(),
    webhook.histogram_bucket(double precision), webhook.histogram(double precision[]),
    webhook.histogram_add(bigint[], bigint[]), webhook.histogram_sum(bigint[]),
    webhook.histogram_percentile(bigint[], double precision, double precision),
    webhook.histogram_le(double precision[], double precision[]) TO PUBLIC;

-- Read only: with UPDATE or DELETE it could LOCK the table, which every
-- writer and the worker read (the API's functions are SECURITY DEFINER).
GRANT SELECT ON webhook.webhooks, webhook.settings TO webhook_admin;
GRANT SELECT ON webhook.events, webhook.deliveries, webhook.attempts, webhook.outcomes TO webhook_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO webhook_admin;
-- The internals of topic definitions run as the extension owner only; the
-- triggers' function is the extension owner's alone (CREATE TRIGGER checks
-- EXECUTE, so nobody else can attach it to a table).
REVOKE EXECUTE ON FUNCTION webhook.emit_topic(), webhook.change_topic_as_owner(text, json, boolean, oid),
    webhook.store_topic(webhook.topics, boolean, boolean, regrole), webhook.remove_topic(text, regrole),
    webhook.install_topic(text), webhook.uninstall_topic(text), webhook.mark_replicated(),
    webhook.notify(text, jsonb), webhook.notify_dead_deliveries(bigint[]),
    webhook.rebuild_delivery_stats(), webhook.fan_out(bigint, bigint[], double precision, bigint, bigint),
    webhook.fanout_restore_row(), webhook.replicated_event(), webhook.skip_replicated_row(),
    webhook.snapshot_before_me(), webhook.body_matches(json, jsonb), webhook.order_key_of(json, text),
    webhook.define_documented_topic(text, text, text, text, text, regprocedure, json, text[], text[], text, text, text, text),
    webhook.registry_guard(), webhook.registry_changed(), webhook.registry_copy_applied(),
    webhook.apply_registry_row(text, json, text[]), webhook.delete_webhooks_here(text[]), webhook.sync_registry(),
    webhook.distribute_registry(), webhook.begin_registry_apply(), webhook.rotate_log(interval),
    webhook.move_unfinished(smallint, smallint), webhook.delete_attempts()
    FROM webhook_admin;

-- Every function runs with search_path = pg_catalog, pg_temp, whoever
-- calls it with whatever path. Not needed (and not set) where the body is
-- bound when the function is created: SQL-standard bodies (RETURN, BEGIN
-- ATOMIC, which PostgreSQL can also inline, a SET clause would stop that)
-- and the C functions, whose statements qualify every name and operator.
DO $pin$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace IN ('webhook'::regnamespace, 'lms'::regnamespace)
           AND l.lanname IN ('plpgsql', 'sql') AND p.prosqlbody IS NULL
           AND NOT coalesce(p.proconfig::text[] @> ARRAY['search_path=pg_catalog, pg_temp'], false)
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END
$pin$;

-- Ask the launcher for this database's delivery worker (at commit).
SELECT webhook.request_worker();
