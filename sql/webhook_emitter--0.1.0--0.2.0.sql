-- webhook_emitter 0.1.0 -> 0.2.0. Run by ALTER EXTENSION webhook_emitter UPDATE;
-- what changes is listed in CHANGELOG.md. A fresh 0.2.0 install and an
-- upgraded 0.1.0 have the same schema (tests/e2e/tests/upgrade.rs).
\echo Use "ALTER EXTENSION webhook_emitter UPDATE" to load this file. \quit

-- 1. The lms tables (and their rows) are the installation's data: they are
--    no longer members of the extension, so DROP EXTENSION keeps them and
--    pg_dump dumps them like any application table (with their sequences).
DO $$
DECLARE
    member record;
BEGIN
    FOR member IN
        SELECT c.oid::regclass AS rel, c.relkind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'webhook_emitter')
           AND c.relnamespace = 'lms'::regnamespace AND c.relkind IN ('r', 'S')
         ORDER BY c.relkind DESC
    LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION webhook_emitter DROP %s %s',
            CASE member.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, member.rel);
    END LOOP;
    ALTER EXTENSION webhook_emitter DROP SCHEMA lms;
END
$$;

-- 2. Dump and restore: the restored settings row replaces the default one;
--    the queue and the identity sequences are dumped.
CREATE FUNCTION webhook.settings_replace_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM webhook.settings;
    RETURN NEW;
END
$$;
CREATE TRIGGER settings_replace_row BEFORE INSERT ON webhook.settings
    FOR EACH ROW EXECUTE FUNCTION webhook.settings_replace_row();

SELECT pg_catalog.pg_extension_config_dump('webhook.webhooks_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts_id_seq', '');

-- 3. Held deliveries and no orphans: a disabled webhook holds its events;
--    deliveries reference their webhook (deleting it cascades).
ALTER TABLE webhook.deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE webhook.deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'dead', 'held'));
DROP TRIGGER forget_webhook_deliveries ON webhook.webhooks;
DROP FUNCTION webhook.forget_webhook_deliveries();
DELETE FROM webhook.deliveries d WHERE NOT EXISTS (SELECT FROM webhook.webhooks w WHERE w.id = d.webhook_id);
ALTER TABLE webhook.deliveries ADD CONSTRAINT deliveries_webhook_id_fkey
    FOREIGN KEY (webhook_id) REFERENCES webhook.webhooks (id) ON DELETE CASCADE;
DROP INDEX webhook.deliveries_finished_idx;
CREATE INDEX deliveries_finished_idx ON webhook.deliveries (created_at)
    WHERE status IN ('delivered', 'dead', 'held');
CREATE INDEX deliveries_held_idx ON webhook.deliveries (webhook_id, created_at)
    WHERE status = 'held';
CREATE INDEX deliveries_leased_idx ON webhook.deliveries (lease_until)
    WHERE status = 'delivering';
COMMENT ON TABLE webhook.deliveries IS 'One row per event and webhook: status pending/delivering/delivered/failed/dead, or held while the webhook is disabled.';
UPDATE webhook.deliveries d SET status = 'held', lease_until = NULL
  FROM webhook.webhooks w
 WHERE w.id = d.webhook_id AND NOT w.enabled AND d.status IN ('pending', 'failed');

CREATE FUNCTION webhook.hold_or_release_deliveries() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.enabled THEN
        UPDATE webhook.deliveries d SET status = 'pending', next_attempt_at = d.created_at, lease_until = NULL
         WHERE d.webhook_id = NEW.id AND d.status = 'held';
        IF FOUND THEN
            PERFORM webhook.wake_worker_at_commit();
        END IF;
    ELSE
        UPDATE webhook.deliveries d SET status = 'held', lease_until = NULL
         WHERE d.webhook_id = NEW.id AND d.status IN ('pending', 'failed');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER hold_or_release_deliveries AFTER UPDATE OF enabled ON webhook.webhooks
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled)
    EXECUTE FUNCTION webhook.hold_or_release_deliveries();

CREATE OR REPLACE FUNCTION webhook.topic_wanted(topic text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
#variable_conflict use_variable
BEGIN
    -- plpgsql rather than SQL: its plan is cached across calls; no SET
    -- clause (names are qualified) to keep the per-call cost low.
    RETURN (SELECT s.enabled AND EXISTS (
                SELECT FROM webhook.webhooks w WHERE w.topics @> ARRAY[topic])
            FROM webhook.settings s);
END
$$;

CREATE OR REPLACE FUNCTION webhook.enqueue(topic text, body json) RETURNS text
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    event_id text := webhook.new_event_id();
    ts timestamptz := clock_timestamp();
    queued bigint;
BEGIN
    -- One statement (each statement has a fixed executor cost on the write
    -- path): the event row only when the switch is on and a webhook
    -- subscribes, and one delivery per such webhook. FOR KEY SHARE: a
    -- concurrent delete_webhook waits for this transaction (and cascades to
    -- what it queued) or has removed the webhook, which is then skipped.
    WITH s AS (SELECT tenant_id FROM webhook.settings WHERE enabled),
         t AS (SELECT c.source, c.resource, c.action FROM webhook.topics c WHERE c.topic = topic),
         w AS (SELECT wh.id, wh.enabled, wh.ordering, wh.ordering_key FROM webhook.webhooks wh
               WHERE wh.topics @> ARRAY[topic]
               FOR KEY SHARE),
         e AS (INSERT INTO webhook.events (id, topic, body, tenant_id, created_at)
               SELECT event_id, topic,
                      CASE WHEN t.source = 'braincert' THEN json_build_object(
                          'id', event_id,
                          'resource', t.resource,
                          'action', t.action,
                          'domain_id', s.tenant_id,
                          'tenant_id', s.tenant_id,
                          'created_at', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                          'timestamp', floor(extract(epoch FROM ts))::bigint,
                          'payload', body)
                      ELSE body END,
                      s.tenant_id, ts
               FROM s, t
               WHERE EXISTS (SELECT FROM w)
               RETURNING events.id, events.body)
    INSERT INTO webhook.deliveries (event_id, webhook_id, status, order_key)
    SELECT e.id, w.id, CASE WHEN w.enabled THEN 'pending' ELSE 'held' END,
           CASE w.ordering WHEN 'none' THEN NULL WHEN 'fifo' THEN ''
                -- An event with no value at the key joins the '' sequence.
                ELSE coalesce(e.body #>> string_to_array(w.ordering_key, '.'), '') END
    FROM e, w;
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued = 0 THEN
        IF NOT EXISTS (SELECT FROM webhook.topics c WHERE c.topic = topic) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('topic: unknown topic %L', topic), HINT = 'See SELECT topic FROM webhook.topics.';
        END IF;
        RETURN NULL;  -- switch off or nobody subscribed: nothing queued
    END IF;
    PERFORM webhook.wake_worker_at_commit();
    RETURN event_id;
END
$$;
COMMENT ON FUNCTION webhook.enqueue IS 'Queue an event (called by the lms triggers); returns its id, or NULL when nobody subscribes.';

DROP FUNCTION webhook.enable_webhook(bigint);
CREATE FUNCTION webhook.enable_webhook(id bigint, discard_held boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    held bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM webhook.webhooks w WHERE w.id = id) THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('id: webhook %s does not exist', id);
    END IF;
    IF coalesce(discard_held, false) THEN
        DELETE FROM webhook.deliveries d WHERE d.webhook_id = id AND d.status = 'held';
        GET DIAGNOSTICS held = ROW_COUNT;
    ELSE
        SELECT count(*) INTO held FROM webhook.deliveries d WHERE d.webhook_id = id AND d.status = 'held';
    END IF;
    -- Releasing the rest is the hold_or_release_deliveries trigger's job.
    PERFORM webhook.update_webhook(id, enabled => true);
    RETURN held;
END
$$;
COMMENT ON FUNCTION webhook.enable_webhook IS 'Enable a webhook; its held deliveries go out oldest first (or are dropped with discard_held => true). Returns how many were held.';

-- 4. Hardening: PUBLIC sees webhook URLs without query string or userinfo,
--    header names without values, and attempts without what the receiver
--    answered (excerpt and headers are admin-only; see grants below).
CREATE FUNCTION webhook."redact_url"(
	"url" TEXT /* & str */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'redact_url_wrapper';

CREATE OR REPLACE VIEW webhook.webhook_list AS
SELECT id, name, webhook.redact_url(url) AS url, description, topics, content_type,
       auth_username,
       CASE WHEN auth_password IS NULL THEN NULL ELSE '********' END AS auth_password,
       body_template, enabled,
       CASE WHEN signing_secret IS NULL THEN NULL ELSE 'whsec_********' END AS signing_secret,
       (SELECT coalesce(jsonb_object_agg(h.name, '********'), '{}') FROM jsonb_each(headers) AS h(name, value))
           AS headers,
       timeout_ms, disabled_reason, disabled_at, failing_since, created_at, updated_at,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.webhook_id = webhooks.id AND d.status = 'held') AS held
FROM webhook.webhooks;
COMMENT ON VIEW webhook.webhook_list IS 'Webhooks with passwords, signing secrets, header values and the URL query string masked; held = deliveries kept while disabled.';

CREATE OR REPLACE VIEW webhook.webhook_health AS
SELECT w.id AS webhook_id, w.name, w.enabled, w.disabled_reason, w.failing_since,
       count(a.id) AS attempts_24h,
       count(a.id) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS successes_24h,
       round(100.0 * count(a.id) FILTER (WHERE a.status_code BETWEEN 200 AND 299) / nullif(count(a.id), 0), 1)
           AS success_rate_pct,
       max(a.started_at) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS last_success_at,
       max(a.started_at) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299) AS last_failure_at,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS latency_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY a.duration_ms) AS latency_p99_ms,
       (SELECT count(*) FROM webhook.deliveries p
         WHERE p.webhook_id = w.id AND p.status IN ('pending', 'failed', 'delivering')) AS backlog,
       (SELECT count(*) FROM webhook.deliveries h WHERE h.webhook_id = w.id AND h.status = 'held') AS held
FROM webhook.webhooks w
LEFT JOIN webhook.deliveries d ON d.webhook_id = w.id AND d.last_attempt_at > now() - interval '24 hours'
LEFT JOIN webhook.attempts a ON a.delivery_id = d.id AND a.started_at > now() - interval '24 hours'
GROUP BY w.id;
COMMENT ON VIEW webhook.webhook_health IS 'Per webhook: success rate, last success/failure, latency percentiles (last 24 h), backlog and held deliveries.';

-- 5. Endpoint settings: signing secret rotation with an overlap, bearer
--    token auth, a per-endpoint rate limit, ordered delivery, mTLS client
--    certificates, OAuth2 client credentials.
ALTER TABLE webhook.webhooks
    ADD COLUMN previous_signing_secret text,
    ADD COLUMN previous_signing_secret_until timestamptz,
    ADD COLUMN bearer_token text,
    ADD COLUMN rate_limit_per_second integer,
    ADD COLUMN ordering text NOT NULL DEFAULT 'none'
        CONSTRAINT webhooks_ordering_check CHECK (ordering IN ('none', 'fifo', 'per_key')),
    ADD COLUMN ordering_key text,
    ADD COLUMN client_certificate text,
    ADD COLUMN client_key text,
    ADD COLUMN oauth2_token_url text,
    ADD COLUMN oauth2_client_id text,
    ADD COLUMN oauth2_client_secret text,
    ADD COLUMN oauth2_scope text;
-- Ordered deliveries carry their sequence's key and are claimed only at
-- the head of it; the due-time index keeps only unordered ones.
ALTER TABLE webhook.deliveries ADD COLUMN order_key text;
DROP INDEX webhook.deliveries_due_idx;
CREATE INDEX deliveries_due_idx ON webhook.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed') AND order_key IS NULL;
CREATE INDEX deliveries_sequence_idx ON webhook.deliveries (webhook_id, order_key, id)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed', 'delivering', 'held');
CREATE FUNCTION webhook."check_client_certificate"(
	"certificate" TEXT, /* & str */
	"key" TEXT /* & str */
) RETURNS void
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_client_certificate_wrapper';
CREATE FUNCTION webhook."check_oauth2"(
	"token_url" TEXT, /* Option < & str > */
	"client_id" TEXT, /* Option < & str > */
	"client_secret" TEXT, /* Option < & str > */
	"scope" TEXT /* Option < & str > */
) RETURNS void
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_oauth2_wrapper';
DROP FUNCTION webhook.create_webhook(text, text, text[], text, text, text, text, text, boolean, text, boolean, jsonb, integer);
CREATE FUNCTION webhook.create_webhook(
    name text,
    url text,
    topics text[],
    content_type text DEFAULT 'application/json',
    description text DEFAULT NULL,
    auth_username text DEFAULT NULL,
    auth_password text DEFAULT NULL,
    body_template text DEFAULT NULL,
    enabled boolean DEFAULT true,
    signing_secret text DEFAULT NULL,
    generate_signing_secret boolean DEFAULT false,
    headers jsonb DEFAULT '{}',
    timeout_ms integer DEFAULT NULL,
    bearer_token text DEFAULT NULL,
    rate_limit_per_second integer DEFAULT NULL,
    ordering text DEFAULT 'none',
    ordering_key text DEFAULT NULL,
    client_certificate text DEFAULT NULL,
    client_key text DEFAULT NULL,
    oauth2_token_url text DEFAULT NULL,
    oauth2_client_id text DEFAULT NULL,
    oauth2_client_secret text DEFAULT NULL,
    oauth2_scope text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    new_id bigint;
BEGIN
    IF generate_signing_secret AND signing_secret IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'signing_secret: give a secret or generate_signing_secret => true, not both';
    END IF;
    INSERT INTO webhook.webhooks AS w (name, url, topics, content_type, description, auth_username,
        auth_password, body_template, enabled, signing_secret, headers, timeout_ms, bearer_token,
        rate_limit_per_second, ordering, ordering_key, client_certificate, client_key,
        oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scope)
    VALUES (name, url, topics, coalesce(content_type, 'application/json'), description, auth_username,
        auth_password, body_template, coalesce(enabled, true),
        CASE WHEN generate_signing_secret THEN webhook.generate_signing_secret() ELSE signing_secret END,
        coalesce(headers, '{}'), timeout_ms, bearer_token, rate_limit_per_second,
        coalesce(ordering, 'none'), ordering_key, client_certificate, client_key,
        oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scope)
    RETURNING w.id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION webhook.create_webhook IS 'Register a webhook; returns its id. Raises 22023 naming the field on bad input.';
DROP FUNCTION webhook.update_webhook(bigint, text, text, text[], text, text, text, text, text, boolean, text, jsonb, integer, boolean, boolean, boolean, boolean);
CREATE FUNCTION webhook.update_webhook(
    id bigint,
    name text DEFAULT NULL,
    url text DEFAULT NULL,
    topics text[] DEFAULT NULL,
    content_type text DEFAULT NULL,
    description text DEFAULT NULL,
    auth_username text DEFAULT NULL,
    auth_password text DEFAULT NULL,
    body_template text DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    signing_secret text DEFAULT NULL,
    headers jsonb DEFAULT NULL,
    timeout_ms integer DEFAULT NULL,
    clear_auth boolean DEFAULT false,
    clear_body_template boolean DEFAULT false,
    clear_signing_secret boolean DEFAULT false,
    rotate_signing_secret boolean DEFAULT false,
    rotation_overlap interval DEFAULT '24 hours',
    bearer_token text DEFAULT NULL,
    clear_bearer_token boolean DEFAULT false,
    rate_limit_per_second integer DEFAULT NULL,
    clear_rate_limit boolean DEFAULT false,
    ordering text DEFAULT NULL,
    ordering_key text DEFAULT NULL,
    client_certificate text DEFAULT NULL,
    client_key text DEFAULT NULL,
    clear_client_certificate boolean DEFAULT false,
    oauth2_token_url text DEFAULT NULL,
    oauth2_client_id text DEFAULT NULL,
    oauth2_client_secret text DEFAULT NULL,
    oauth2_scope text DEFAULT NULL,
    clear_oauth2 boolean DEFAULT false
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    overlap interval := coalesce(rotation_overlap, interval '0');
BEGIN
    IF (clear_auth AND (auth_username IS NOT NULL OR auth_password IS NOT NULL))
       OR (clear_body_template AND body_template IS NOT NULL)
       OR ((clear_signing_secret OR rotate_signing_secret) AND signing_secret IS NOT NULL)
       OR (clear_signing_secret AND rotate_signing_secret)
       OR (clear_bearer_token AND bearer_token IS NOT NULL)
       OR (clear_rate_limit AND rate_limit_per_second IS NOT NULL)
       OR (clear_client_certificate AND (client_certificate IS NOT NULL OR client_key IS NOT NULL))
       OR (clear_oauth2 AND (oauth2_token_url IS NOT NULL OR oauth2_client_id IS NOT NULL
                             OR oauth2_client_secret IS NOT NULL OR oauth2_scope IS NOT NULL)) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'clear_*/rotate_signing_secret: cannot both set and clear the same setting';
    END IF;
    IF overlap < interval '0' OR overlap > interval '30 days' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('rotation_overlap: %s is out of range; allowed: 0 to 30 days', overlap);
    END IF;
    UPDATE webhook.webhooks w SET
        name = coalesce(name, w.name),
        url = coalesce(url, w.url),
        topics = coalesce(topics, w.topics),
        content_type = coalesce(content_type, w.content_type),
        description = coalesce(description, w.description),
        auth_username = CASE WHEN clear_auth THEN NULL ELSE coalesce(auth_username, w.auth_username) END,
        auth_password = CASE WHEN clear_auth THEN NULL ELSE coalesce(auth_password, w.auth_password) END,
        body_template = CASE WHEN clear_body_template THEN NULL ELSE coalesce(body_template, w.body_template) END,
        enabled = coalesce(enabled, w.enabled),
        signing_secret = CASE WHEN clear_signing_secret THEN NULL
                              WHEN rotate_signing_secret THEN webhook.generate_signing_secret()
                              ELSE coalesce(signing_secret, w.signing_secret) END,
        -- Rotation keeps the old secret signing for the overlap; any other
        -- change of the secret replaces it at once.
        previous_signing_secret = CASE
            WHEN rotate_signing_secret AND w.signing_secret IS NOT NULL AND overlap > interval '0'
                THEN w.signing_secret
            WHEN clear_signing_secret OR rotate_signing_secret OR signing_secret IS NOT NULL THEN NULL
            ELSE w.previous_signing_secret END,
        previous_signing_secret_until = CASE
            WHEN rotate_signing_secret AND w.signing_secret IS NOT NULL AND overlap > interval '0'
                THEN now() + overlap
            WHEN clear_signing_secret OR rotate_signing_secret OR signing_secret IS NOT NULL THEN NULL
            ELSE w.previous_signing_secret_until END,
        headers = coalesce(headers, w.headers),
        timeout_ms = coalesce(timeout_ms, w.timeout_ms),
        bearer_token = CASE WHEN clear_bearer_token THEN NULL ELSE coalesce(bearer_token, w.bearer_token) END,
        rate_limit_per_second = CASE WHEN clear_rate_limit THEN NULL
                                     ELSE coalesce(rate_limit_per_second, w.rate_limit_per_second) END,
        ordering = coalesce(ordering, w.ordering),
        -- Back to unordered or fifo: a key path no longer applies.
        ordering_key = CASE WHEN ordering IS NOT NULL AND ordering <> 'per_key' AND ordering_key IS NULL THEN NULL
                            ELSE coalesce(ordering_key, w.ordering_key) END,
        client_certificate = CASE WHEN clear_client_certificate THEN NULL
                                  ELSE coalesce(client_certificate, w.client_certificate) END,
        client_key = CASE WHEN clear_client_certificate THEN NULL ELSE coalesce(client_key, w.client_key) END,
        oauth2_token_url = CASE WHEN clear_oauth2 THEN NULL ELSE coalesce(oauth2_token_url, w.oauth2_token_url) END,
        oauth2_client_id = CASE WHEN clear_oauth2 THEN NULL ELSE coalesce(oauth2_client_id, w.oauth2_client_id) END,
        oauth2_client_secret = CASE WHEN clear_oauth2 THEN NULL
                                    ELSE coalesce(oauth2_client_secret, w.oauth2_client_secret) END,
        oauth2_scope = CASE WHEN clear_oauth2 THEN NULL ELSE coalesce(oauth2_scope, w.oauth2_scope) END
    WHERE w.id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('id: webhook %s does not exist', id);
    END IF;
END
$$;
COMMENT ON FUNCTION webhook.update_webhook IS 'Change only the given settings of a webhook (NULL = unchanged; clear_* to remove optional ones).';
CREATE OR REPLACE VIEW webhook.webhook_list AS
SELECT id, name, webhook.redact_url(url) AS url, description, topics, content_type,
       auth_username,
       CASE WHEN auth_password IS NULL THEN NULL ELSE '********' END AS auth_password,
       body_template, enabled,
       CASE WHEN signing_secret IS NULL THEN NULL ELSE 'whsec_********' END AS signing_secret,
       (SELECT coalesce(jsonb_object_agg(h.name, '********'), '{}') FROM jsonb_each(headers) AS h(name, value))
           AS headers,
       timeout_ms, disabled_reason, disabled_at, failing_since, created_at, updated_at,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.webhook_id = webhooks.id AND d.status = 'held') AS held,
       CASE WHEN bearer_token IS NULL THEN NULL ELSE '********' END AS bearer_token,
       previous_signing_secret_until, rate_limit_per_second, ordering, ordering_key,
       client_certificate,
       CASE WHEN client_key IS NULL THEN NULL ELSE '********' END AS client_key,
       webhook.redact_url(oauth2_token_url) AS oauth2_token_url, oauth2_client_id,
       CASE WHEN oauth2_client_secret IS NULL THEN NULL ELSE '********' END AS oauth2_client_secret,
       oauth2_scope
FROM webhook.webhooks;
COMMENT ON VIEW webhook.webhook_list IS 'Webhooks with passwords, bearer tokens, signing secrets, client keys, OAuth2 client secrets, header values and URL query strings masked; held = deliveries kept while disabled; previous_signing_secret_until = end of a rotation''s overlap.';

-- Ordered delivery: 'fifo' sends a webhook's events one at a time in queue
-- order; 'per_key' does so per value at ordering_key (a dotted path into the
-- body as delivered), which every subscribed topic's sample must carry.
CREATE FUNCTION webhook.check_ordering(ordering text, ordering_key text, topics text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    missing text;
BEGIN
    IF ordering IS NULL OR ordering NOT IN ('none', 'fifo', 'per_key') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ordering: %L is not supported; allowed: none, fifo, per_key', ordering);
    END IF;
    IF ordering <> 'per_key' THEN
        IF ordering_key IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('ordering_key: applies only with ordering => ''per_key'' (ordering is %L)', ordering);
        END IF;
        RETURN;
    END IF;
    IF ordering_key IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'ordering_key: required with ordering => ''per_key'': a dotted path into the body, e.g. ''payload.user_id''';
    END IF;
    IF length(ordering_key) > 200 OR ordering_key !~ '^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ordering_key: %L is not a dotted path of names (letters, digits, _; at most 200 characters), e.g. ''payload.user_id''', ordering_key);
    END IF;
    SELECT string_agg(c.topic, ', ' ORDER BY c.topic) INTO missing
    FROM webhook.topics c
    WHERE c.topic = ANY (topics) AND (c.sample_body #> string_to_array(ordering_key, '.')) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ordering_key: %L is not in the body of %s; every subscribed topic must carry the key', ordering_key, missing),
            HINT = 'See the topics'' sample_body in webhook.topics.';
    END IF;
END
$$;

-- 6. Isolation: the worker's health bookkeeping and enable/disable do not
--    re-validate a webhook's settings, so a row that fails validation
--    (written with triggers off) fails only its own deliveries. (Also validates the 0.2.0 settings.)
CREATE OR REPLACE FUNCTION webhook.validate_webhook() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
    samples json;
    state_columns CONSTANT text[] := ARRAY['enabled', 'disabled_reason', 'disabled_at', 'failing_since', 'updated_at'];
BEGIN
    -- Only writes that change a setting are validated. The worker's health
    -- bookkeeping (failing_since, auto-disable, 410) and enabling or
    -- disabling change none: a row that no longer passes validation (written
    -- with triggers off, or under older rules) must not make recording an
    -- outcome fail, nor keep an admin from disabling it.
    IF TG_OP = 'INSERT' OR (to_jsonb(NEW) - state_columns) IS DISTINCT FROM (to_jsonb(OLD) - state_columns) THEN
        IF NEW.name IS NULL OR btrim(NEW.name) = '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'name: must not be empty',
                HINT = 'Give the webhook a descriptive name, e.g. ''CRM sign-ups''.';
        END IF;
        IF length(NEW.name) > 200 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('name: is %s characters; at most 200 are allowed', length(NEW.name));
        END IF;
        IF EXISTS (SELECT FROM webhook.webhooks w WHERE w.name = NEW.name AND w.id IS DISTINCT FROM NEW.id) THEN
            RAISE EXCEPTION USING ERRCODE = 'unique_violation',
                MESSAGE = format('name: a webhook named %L already exists; names must be unique', NEW.name);
        END IF;
        IF NEW.url IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'url: must not be null';
        END IF;
        PERFORM webhook.check_url(NEW.url);
        IF NEW.topics IS NULL OR cardinality(NEW.topics) = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'topics: at least one topic is required',
                HINT = 'See SELECT topic FROM webhook.topics.';
        END IF;
        FOREACH t IN ARRAY NEW.topics LOOP
            IF t IS NULL OR NOT EXISTS (SELECT FROM webhook.topics c WHERE c.topic = t) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('topics: unknown topic %L', t),
                    HINT = 'Allowed topics: ' || (SELECT string_agg(topic, ', ' ORDER BY topic) FROM webhook.topics);
            END IF;
        END LOOP;
        IF (SELECT count(DISTINCT x) FROM unnest(NEW.topics) x) <> cardinality(NEW.topics) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'topics: a topic is listed more than once; list each topic once';
        END IF;
        IF NEW.content_type IS NULL OR NEW.content_type NOT IN ('application/json', 'application/xml') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('content_type: %L is not supported; allowed: application/json, application/xml', NEW.content_type);
        END IF;
        IF (NEW.auth_username IS NULL) <> (NEW.auth_password IS NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'auth_username, auth_password: HTTP Basic auth needs both a username and a password, or neither';
        END IF;
        IF NEW.auth_username IS NOT NULL AND (NEW.auth_username = '' OR strpos(NEW.auth_username, ':') > 0
                OR NEW.auth_username ~ '[[:cntrl:]]' OR NEW.auth_password ~ '[[:cntrl:]]') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'auth_username: must be non-empty without colons or control characters (and auth_password without control characters)';
        END IF;
        IF NEW.headers IS NULL THEN
            NEW.headers := '{}';
        END IF;
        PERFORM webhook.check_headers(NEW.headers);
        IF NEW.signing_secret IS NOT NULL THEN
            PERFORM webhook.check_signing_secret(NEW.signing_secret);
        END IF;
        IF (NEW.previous_signing_secret IS NULL) <> (NEW.previous_signing_secret_until IS NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'previous_signing_secret, previous_signing_secret_until: give both or neither (update_webhook(id, rotate_signing_secret => true) sets them)';
        END IF;
        IF NEW.previous_signing_secret IS NOT NULL THEN
            PERFORM webhook.check_signing_secret(NEW.previous_signing_secret);
        END IF;
        IF NEW.bearer_token IS NOT NULL AND (NEW.bearer_token = '' OR length(NEW.bearer_token) > 4096
                OR NEW.bearer_token ~ '[[:cntrl:][:space:]]') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'bearer_token: must be 1 to 4096 characters without spaces or control characters';
        END IF;
        IF NEW.bearer_token IS NOT NULL AND NEW.auth_username IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'bearer_token: cannot be combined with auth_username/auth_password (both are sent as the Authorization header); use one of them';
        END IF;
        IF NEW.rate_limit_per_second IS NOT NULL AND NEW.rate_limit_per_second NOT BETWEEN 1 AND 100000 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('rate_limit_per_second: %s is out of range; allowed: 1 to 100000 requests per second, or NULL for no limit', NEW.rate_limit_per_second);
        END IF;
        PERFORM webhook.check_ordering(NEW.ordering, NEW.ordering_key, NEW.topics);
        IF (NEW.client_certificate IS NULL) <> (NEW.client_key IS NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'client_certificate, client_key: mTLS needs both a PEM certificate and its PEM private key, or neither';
        END IF;
        IF NEW.client_certificate IS NOT NULL THEN
            IF NEW.url NOT ILIKE 'https://%' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'client_certificate: a client certificate is presented only over TLS; the url must start with https://';
            END IF;
            PERFORM webhook.check_client_certificate(NEW.client_certificate, NEW.client_key);
        END IF;
        PERFORM webhook.check_oauth2(NEW.oauth2_token_url, NEW.oauth2_client_id, NEW.oauth2_client_secret, NEW.oauth2_scope);
        IF NEW.oauth2_token_url IS NOT NULL AND (NEW.auth_username IS NOT NULL OR NEW.bearer_token IS NOT NULL) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'oauth2_token_url: OAuth2 cannot be combined with auth_username/auth_password or bearer_token (each is sent as the Authorization header); use one of them';
        END IF;
        IF NEW.timeout_ms IS NOT NULL AND NEW.timeout_ms NOT BETWEEN 100 AND 300000 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('timeout_ms: %s is out of range; allowed: 100 to 300000 milliseconds, or NULL for webhook.request_timeout', NEW.timeout_ms);
        END IF;
        IF NEW.body_template IS NOT NULL AND (TG_OP = 'INSERT'
                OR NEW.body_template IS DISTINCT FROM OLD.body_template OR NEW.topics IS DISTINCT FROM OLD.topics) THEN
            SELECT json_object_agg(c.topic, c.sample_body) INTO samples
            FROM webhook.topics c WHERE c.topic = ANY (NEW.topics);
            PERFORM webhook.check_body_template(NEW.body_template, samples);
        END IF;
    END IF;

    IF TG_OP = 'UPDATE' THEN
        NEW.created_at := OLD.created_at;
        NEW.updated_at := now();
        IF NEW.enabled AND NOT OLD.enabled THEN
            NEW.disabled_reason := NULL;
            NEW.disabled_at := NULL;
            NEW.failing_since := NULL;
        END IF;
    END IF;
    IF NOT NEW.enabled AND NEW.disabled_at IS NULL THEN
        NEW.disabled_at := now();
        NEW.disabled_reason := coalesce(NEW.disabled_reason, 'disabled by ' || session_user);
    END IF;
    RETURN NEW;
END
$$;

-- 7. Metrics for Prometheus (sql/metrics.sql).
CREATE TABLE webhook.delivery_counters (
    webhook_id     bigint NOT NULL REFERENCES webhook.webhooks (id) ON DELETE CASCADE,
    topic          text   NOT NULL,
    delivered      bigint NOT NULL DEFAULT 0,
    failed         bigint NOT NULL DEFAULT 0,  -- attempts that failed and will be retried
    dead           bigint NOT NULL DEFAULT 0,
    retried        bigint NOT NULL DEFAULT 0,  -- attempts after the first
    -- Queued-to-delivered latency: cumulative counts for each bound of
    -- webhook.latency_buckets(), their sum (seconds) and count.
    latency_le     bigint[] NOT NULL,
    latency_sum    double precision NOT NULL DEFAULT 0,
    latency_count  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, topic)
);
COMMENT ON TABLE webhook.delivery_counters IS 'Monotonic delivery counters per webhook and topic (kept when the log is pruned); see webhook.metrics().';
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_counters', '');

-- Upper bounds (seconds) of the latency histogram's buckets, +Inf aside.
CREATE FUNCTION webhook.latency_buckets() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600]::double precision[];

-- Called by the worker with each recorded batch: delivery ids and the
-- status each attempt ended in (delivered, failed, dead; held counts as
-- failed). Deliveries are already updated (delivered_at set).
CREATE FUNCTION webhook.count_outcomes(ids bigint[], statuses text[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO webhook.delivery_counters AS c
        (webhook_id, topic, delivered, failed, dead, retried, latency_le, latency_sum, latency_count)
    SELECT d.webhook_id, e.topic,
           count(*) FILTER (WHERE r.status = 'delivered'),
           count(*) FILTER (WHERE r.status IN ('failed', 'held')),
           count(*) FILTER (WHERE r.status = 'dead'),
           count(*) FILTER (WHERE d.attempts > 1),
           (SELECT array_agg(count_le ORDER BY i) FROM (
                SELECT b.i, count(*) FILTER (WHERE l.status = 'delivered' AND l.latency <= b.le) AS count_le
                  FROM unnest(webhook.latency_buckets()) WITH ORDINALITY AS b(le, i)
                  CROSS JOIN unnest(array_agg(r.status), array_agg(extract(epoch FROM d.delivered_at - d.created_at)::float8))
                       AS l(status, latency)
                 GROUP BY b.i) per_bucket),
           coalesce(sum(extract(epoch FROM d.delivered_at - d.created_at)::float8) FILTER (WHERE r.status = 'delivered'), 0),
           count(*) FILTER (WHERE r.status = 'delivered')
      FROM unnest(ids, statuses) AS r(id, status)
      JOIN webhook.deliveries d ON d.id = r.id
      JOIN webhook.events e ON e.id = d.event_id
     GROUP BY d.webhook_id, e.topic
    ON CONFLICT (webhook_id, topic) DO UPDATE SET
        delivered = c.delivered + excluded.delivered,
        failed = c.failed + excluded.failed,
        dead = c.dead + excluded.dead,
        retried = c.retried + excluded.retried,
        latency_le = (SELECT array_agg(coalesce(o, 0) + coalesce(n, 0) ORDER BY i)
                        FROM unnest(c.latency_le, excluded.latency_le) WITH ORDINALITY AS u(o, n, i)),
        latency_sum = c.latency_sum + excluded.latency_sum,
        latency_count = c.latency_count + excluded.latency_count;
END;

-- A label value in the text exposition format: \, " and newline escaped.
CREATE FUNCTION webhook.prometheus_label(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '"' || replace(replace(replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n') || '"';

-- Every metric in the Prometheus text format (version 0.0.4).
CREATE FUNCTION webhook.metrics() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH hooks AS (
        SELECT w.id, 'webhook=' || webhook.prometheus_label(w.name) || ',webhook_id="' || w.id || '"' AS labels
          FROM webhook.webhook_list w),
    counters AS (
        SELECT c.*, h.labels || ',topic=' || webhook.prometheus_label(c.topic) AS labels
          FROM webhook.delivery_counters c JOIN hooks h ON h.id = c.webhook_id),
    queue AS (
        SELECT h.labels,
               count(d.id) FILTER (WHERE d.status = 'delivering') AS in_flight,
               count(d.id) FILTER (WHERE d.status = 'pending') AS pending,
               count(d.id) FILTER (WHERE d.status = 'failed') AS retrying,
               count(d.id) FILTER (WHERE d.status = 'held') AS held,
               coalesce(extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.status IN ('pending', 'failed'))), 0)
                   AS oldest_pending
          FROM hooks h
          LEFT JOIN webhook.deliveries d ON d.webhook_id = h.id AND d.status IN ('delivering', 'pending', 'failed', 'held')
         GROUP BY h.labels),
    lines (family, series, ord, line) AS (
        SELECT 1, '', 0, E'# HELP webhook_deliveries_total Finished delivery attempts by outcome (failed: will be retried; dead: given up).\n# TYPE webhook_deliveries_total counter'
        UNION ALL SELECT 1, c.labels, o.ord, format('webhook_deliveries_total{%s,outcome="%s"} %s', c.labels, o.outcome, o.n)
          FROM counters c, LATERAL (VALUES (1, 'delivered', c.delivered), (2, 'failed', c.failed), (3, 'dead', c.dead)) AS o(ord, outcome, n)
        UNION ALL SELECT 2, '', 0, E'# HELP webhook_retries_total Attempts after the first.\n# TYPE webhook_retries_total counter'
        UNION ALL SELECT 2, c.labels, 1, format('webhook_retries_total{%s} %s', c.labels, c.retried) FROM counters c
        UNION ALL SELECT 3, '', 0, E'# HELP webhook_in_flight Deliveries being sent now.\n# TYPE webhook_in_flight gauge'
        UNION ALL SELECT 3, q.labels, 1, format('webhook_in_flight{%s} %s', q.labels, q.in_flight) FROM queue q
        UNION ALL SELECT 4, '', 0, E'# HELP webhook_backlog Deliveries waiting: pending (never tried), retrying (failed, due again later), held (webhook disabled).\n# TYPE webhook_backlog gauge'
        UNION ALL SELECT 4, q.labels, b.ord, format('webhook_backlog{%s,state="%s"} %s', q.labels, b.state, b.n)
          FROM queue q, LATERAL (VALUES (1, 'pending', q.pending), (2, 'retrying', q.retrying), (3, 'held', q.held)) AS b(ord, state, n)
        UNION ALL SELECT 5, '', 0, E'# HELP webhook_oldest_pending_age_seconds Age of the oldest delivery not yet delivered (0 when none).\n# TYPE webhook_oldest_pending_age_seconds gauge'
        UNION ALL SELECT 5, q.labels, 1, format('webhook_oldest_pending_age_seconds{%s} %s', q.labels, round(q.oldest_pending::numeric, 3))
          FROM queue q
        UNION ALL SELECT 6, '', 0, E'# HELP webhook_delivery_latency_seconds Time from queueing to a successful delivery.\n# TYPE webhook_delivery_latency_seconds histogram'
        UNION ALL SELECT 6, c.labels, b.i::int, format('webhook_delivery_latency_seconds_bucket{%s,le="%s"} %s', c.labels, b.le, coalesce(c.latency_le[b.i::int], 0))
          FROM counters c, unnest(webhook.latency_buckets()) WITH ORDINALITY AS b(le, i)
        UNION ALL SELECT 6, c.labels, 1000, format('webhook_delivery_latency_seconds_bucket{%s,le="+Inf"} %s', c.labels, c.latency_count)
          FROM counters c
        UNION ALL SELECT 6, c.labels, 1001, format('webhook_delivery_latency_seconds_sum{%s} %s', c.labels, round(c.latency_sum::numeric, 6))
          FROM counters c
        UNION ALL SELECT 6, c.labels, 1002, format('webhook_delivery_latency_seconds_count{%s} %s', c.labels, c.latency_count)
          FROM counters c)
    SELECT string_agg(line, E'\n' ORDER BY family, series, ord) || E'\n' FROM lines;
END;
COMMENT ON FUNCTION webhook.metrics IS 'Delivery metrics in the Prometheus text format: counters per webhook and topic, backlog gauges, a latency histogram.';

-- 8. One delivery worker per database, started by the launcher; CREATE
--    EXTENSION and this upgrade ask for this database's worker.
CREATE FUNCTION webhook."request_worker"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'request_worker_wrapper';

-- Privileges, as a fresh install sets them (sql/grants.sql).
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
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO webhook_admin;

-- Ask the launcher for this database's delivery worker (at commit).
SELECT webhook.request_worker();
