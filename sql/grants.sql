-- webhook_emitter: the privilege model (run last).
--   PUBLIC        : the topic catalog, the settings, webhooks with secrets
--                   masked (webhook_list), the delivery log (deliveries,
--                   attempts without the response excerpt and headers, the
--                   health views, the metrics). Not event bodies, not passwords, signing
--                   secrets, URL tokens or header values, not what a
--                   receiver answered (an echoing receiver would hand out
--                   the request's credentials), no changes.
--   webhook_admin : everything needed to manage webhooks: the management
--                   functions, the full webhooks table (secrets included),
--                   events, Send Test, replay, settings; defining topics
--                   (webhook.define_topic, watch: the catalog, and the
--                   generated trigger functions in schema webhook_triggers).
-- LMS application roles need nothing here: the generated trigger functions
-- run as the topic's definer (SECURITY DEFINER; the extension owner for the
-- documented topics).

REVOKE ALL ON ALL TABLES IN SCHEMA webhook FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA webhook FROM PUBLIC;
GRANT USAGE ON SCHEMA webhook TO PUBLIC;

GRANT SELECT ON webhook.topics, webhook.settings, webhook.webhook_list,
    webhook.deliveries, webhook.recent_failures, webhook.webhook_health,
    webhook.delivery_counters TO PUBLIC;
GRANT SELECT (id, delivery_id, attempt, started_at, duration_ms, status_code, error)
    ON webhook.attempts TO PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.webhooks_for_topic(text), webhook.topic_wanted(text),
    webhook.redact_url(text), webhook.metrics(), webhook.latency_buckets(),
    webhook.prometheus_label(text) TO PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.webhooks TO webhook_admin;
GRANT SELECT, UPDATE ON webhook.settings TO webhook_admin;
GRANT SELECT ON webhook.events, webhook.attempts TO webhook_admin;
GRANT INSERT, UPDATE, DELETE ON webhook.topics TO webhook_admin;
GRANT USAGE, CREATE ON SCHEMA webhook_triggers TO webhook_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO webhook_admin;

-- Ask the launcher for this database's delivery worker (at commit).
SELECT webhook.request_worker();
