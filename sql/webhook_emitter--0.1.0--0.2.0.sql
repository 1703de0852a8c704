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

-- topic_wanted is Rust now (src/api/wanted.rs): each backend caches the
-- subscribed topics; the subscriptions_changed triggers make every backend
-- reload them after a change to the subscriptions or the switch commits.
-- Same OID, so the generated triggers' WHEN clauses keep calling it.
CREATE OR REPLACE FUNCTION webhook.topic_wanted(topic text) RETURNS boolean
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'topic_wanted_wrapper';
CREATE FUNCTION webhook."subscriptions_changed"()
    RETURNS TRIGGER
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'subscriptions_changed_wrapper';
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF topics ON webhook.webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF enabled, tenant_id ON webhook.settings
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE ON webhook.topics
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();

-- enqueue is Rust now (src/api/enqueue.rs): one kept statement locks the
-- webhooks and inserts the event and its deliveries; the switch, the tenant
-- id and the topics' envelopes are cached under the subscriptions
-- generation. Same OID, so the generated trigger functions keep calling it.
CREATE OR REPLACE FUNCTION webhook.enqueue(topic text, body json) RETURNS text
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enqueue_wrapper';
COMMENT ON FUNCTION webhook.enqueue IS 'Queue an event (called by the generated topic triggers); returns its id, or NULL when nobody subscribes.';

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
    ADD COLUMN oauth2_scope text,
    ADD COLUMN filter jsonb;
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
    oauth2_scope text DEFAULT NULL,
    filter jsonb DEFAULT NULL
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
        oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scope, filter)
    VALUES (name, url, topics, coalesce(content_type, 'application/json'), description, auth_username,
        auth_password, body_template, coalesce(enabled, true),
        CASE WHEN generate_signing_secret THEN webhook.generate_signing_secret() ELSE signing_secret END,
        coalesce(headers, '{}'), timeout_ms, bearer_token, rate_limit_per_second,
        coalesce(ordering, 'none'), ordering_key, client_certificate, client_key,
        oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scope, filter)
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
    clear_oauth2 boolean DEFAULT false,
    filter jsonb DEFAULT NULL,
    clear_filter boolean DEFAULT false
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
                             OR oauth2_client_secret IS NOT NULL OR oauth2_scope IS NOT NULL))
       OR (clear_filter AND filter IS NOT NULL) THEN
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
        oauth2_scope = CASE WHEN clear_oauth2 THEN NULL ELSE coalesce(oauth2_scope, w.oauth2_scope) END,
        filter = CASE WHEN clear_filter THEN NULL ELSE coalesce(filter, w.filter) END
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
       oauth2_scope, filter
FROM webhook.webhooks;
COMMENT ON VIEW webhook.webhook_list IS 'Webhooks with passwords, bearer tokens, signing secrets, client keys, OAuth2 client secrets, header values and URL query strings masked; held = deliveries kept while disabled; previous_signing_secret_until = end of a rotation''s overlap; filter = only events whose body contains it.';

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

-- A filter: only events whose body contains it (jsonb @>) are queued for
-- the webhook. Every path it names must be in the body of every subscribed
-- topic (their sample bodies), so a typo cannot silently drop everything.
CREATE FUNCTION webhook.check_filter(filter jsonb, topics text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    deepest integer;
    missing text;
BEGIN
    IF filter IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(filter) <> 'object' OR filter = '{}' OR length(filter::text) > 8192 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'filter: must be a non-empty JSON object of at most 8192 characters, e.g. {"payload": {"payment_type": "paid"}}';
    END IF;
    -- The object paths the filter names, at most 8 levels deep.
    WITH RECURSIVE p (path, value, depth) AS (
        SELECT ARRAY[e.key], e.value, 1 FROM jsonb_each(filter) e
        UNION ALL
        SELECT p.path || e.key, e.value, p.depth + 1
          FROM p, jsonb_each(p.value) e
         WHERE jsonb_typeof(p.value) = 'object' AND p.depth <= 8
    )
    SELECT max(p.depth),
           (SELECT string_agg(DISTINCT format('%s is not in the body of %s', array_to_string(q.path, '.'), c.topic), '; ')
              FROM p q JOIN webhook.topics c ON c.topic = ANY (topics)
             WHERE c.sample_body::jsonb #> q.path IS NULL)
      INTO deepest, missing
      FROM p;
    IF deepest > 8 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'filter: nested more than 8 levels deep';
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('filter: %s; every subscribed topic must carry each path the filter names', missing),
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
        PERFORM webhook.check_filter(NEW.filter, NEW.topics);
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
    SELECT d.webhook_id, d.topic,
           count(*) FILTER (WHERE r.status = 'delivered'),
           count(*) FILTER (WHERE r.status IN ('failed', 'held')),
           count(*) FILTER (WHERE r.status = 'dead'),
           count(*) FILTER (WHERE d.attempts > 1),
           (SELECT array_agg(count_le ORDER BY i) FROM (
                SELECT b.i, count(*) FILTER (WHERE l.status = 'delivered' AND l.latency <= b.le) AS count_le
                  FROM unnest(webhook.latency_buckets()) WITH ORDINALITY AS b(le, i)
                  CROSS JOIN unnest(array_agg(r.status), array_agg(d.latency)) AS l(status, latency)
                 GROUP BY b.i) per_bucket),
           coalesce(sum(d.latency) FILTER (WHERE r.status = 'delivered'), 0),
           count(*) FILTER (WHERE r.status = 'delivered')
      FROM unnest(ids, statuses) AS r(id, status)
      -- One primary-key lookup per id (OFFSET 0 keeps the subquery from
      -- becoming a join): as joins, statistics that said the queue was
      -- empty once made these full index scans per id, minutes per batch.
      CROSS JOIN LATERAL (
          SELECT d.webhook_id, d.attempts,
                 extract(epoch FROM d.delivered_at - d.created_at)::float8 AS latency,
                 (SELECT e.topic FROM webhook.events e WHERE e.id = d.event_id) AS topic
            FROM webhook.deliveries d WHERE d.id = r.id OFFSET 0) d
     WHERE d.topic IS NOT NULL
     GROUP BY d.webhook_id, d.topic
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

-- 9. Topics are data: each topic's definition (table, operations, condition,
--    timing, builder) is a row of webhook.topics; its trigger function and
--    triggers are generated from it (sql/topic_definitions.sql), replacing
--    the hand-written lms trigger functions. Filters per webhook.
ALTER TABLE webhook.topics
    DROP CONSTRAINT topics_check,
    DROP CONSTRAINT topics_source_check,
    ADD CONSTRAINT topics_source_check CHECK (source IN ('braincert', 'aom', 'custom')),
    ADD COLUMN envelope text NOT NULL DEFAULT 'flat'
        CONSTRAINT topics_envelope_kind_check CHECK (envelope IN ('braincert', 'flat')),
    ADD COLUMN source_table text,
    ADD COLUMN operations text[]
        CONSTRAINT topics_operations_check
        CHECK (cardinality(operations) > 0 AND operations <@ ARRAY['insert', 'update', 'delete']),
    ADD COLUMN columns text[],
    ADD COLUMN condition text,
    ADD COLUMN timing text
        CONSTRAINT topics_timing_check CHECK (timing IN ('commit', 'before_delete', 'statement', 'row')),
    ADD COLUMN builder regprocedure,
    ADD COLUMN key_column text,
    ADD COLUMN exclude_columns text[],
    ADD COLUMN trigger_function text,
    ADD COLUMN builtin boolean NOT NULL DEFAULT false;
UPDATE webhook.topics SET envelope = 'braincert' WHERE source = 'braincert';
COMMENT ON TABLE webhook.topics IS 'Topics and their definitions (which writes emit them, how the body is built); change them with webhook.define_topic, drop_topic, watch, unwatch.';

DROP FUNCTION lms.users_webhook_tg(), lms.groups_webhook_tg(), lms.catalog_webhook_tg(),
    lms.course_enrollments_webhook_tg(), lms.course_enrolled_webhook_tg(),
    lms.test_enrollments_webhook_tg(), lms.live_class_enrollments_webhook_tg(),
    lms.course_completions_webhook_tg(), lms.test_attempts_webhook_tg(),
    lms.orders_webhook_tg(), lms.quiz_submissions_webhook_tg(),
    lms.assignment_submissions_webhook_tg(), lms.discussion_posts_webhook_tg(),
    lms.announcements_webhook_tg() CASCADE;

-- course.enrolled (AOM body): one event per statement, with the distinct
-- users and courses of all the enrollments it inserted.
-- A generic plan: with an array argument the custom plans look cheaper, so
-- the plan cache would plan both queries anew on every call (5x the cost).
CREATE FUNCTION lms.course_enrolled_body(p_enrollment_ids bigint[]) RETURNS json
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    RETURN json_build_object(
        'userList', (
            SELECT coalesce(json_agg(json_build_object(
                       'id', u.id,
                       'first_name', u.first_name,
                       'last_name', u.last_name,
                       'email', u.email)
                   ORDER BY u.id), '[]'::json)
            FROM lms.users u
            WHERE u.id IN (SELECT e.user_id FROM lms.course_enrollments e WHERE e.id = ANY (p_enrollment_ids))),
        'enrolled_courses_list', (
            SELECT coalesce(json_agg(json_build_object(
                       'id', c.id,
                       'name', c.name)
                   ORDER BY c.id), '[]'::json)
            FROM lms.courses c
            WHERE c.id IN (SELECT e.course_id FROM lms.course_enrollments e WHERE e.id = ANY (p_enrollment_ids))));
END
$fn$;

-- assignment.submitted: the submission; assignment.evaluated / .rejected:
-- the submission plus the evaluation result.
CREATE FUNCTION lms.assignment_submitted_body(p_submission_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN lms.assignment_submission_body(p_submission_id, false);
END
$fn$;

CREATE FUNCTION lms.assignment_evaluated_body(p_submission_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN lms.assignment_submission_body(p_submission_id, true);
END
$fn$;

-- webhook_emitter: topics are data. A row of webhook.topics says which writes
-- on which table emit the topic, when its body is built and by which
-- builder; webhook.define_topic validates a definition and generates its
-- trigger function (schema webhook_triggers) and triggers from it. The
-- documented LMS topics (sql/topics/*.sql) and webhook.watch use the same
-- mechanism.
--
-- Timing (the "timing" column):
--   commit        deferred row trigger on INSERT/UPDATE: the body is built at
--                 commit from the row as committed (re-read by key; nothing
--                 if it is gone or no longer meets the condition), so rows
--                 written later in the transaction are included.
--   before_delete BEFORE DELETE row trigger: the row and its children are
--                 still there, the body shows the entity as it was.
--   statement     AFTER INSERT/UPDATE statement trigger: one event per
--                 statement; the builder gets the keys of all its rows.
--   row           AFTER row trigger (webhook.watch): the body is the row
--                 event itself, built without a builder.
--
-- Every generated trigger has webhook.topic_wanted(topic) in its WHEN clause,
-- so writes pay nothing beyond that test for topics nobody subscribes to.
--
-- Who may define topics: webhook_admin. The functions run as the caller
-- (SECURITY INVOKER): creating a trigger needs the TRIGGER privilege on the
-- table, and the generated function, SECURITY DEFINER, is owned by the
-- caller, so a builder never runs with more rights than its definer has.

CREATE SCHEMA webhook_triggers;
COMMENT ON SCHEMA webhook_triggers IS 'Trigger functions generated from webhook.topics; redefine the topic rather than editing them.';

-- Generated names: readable, unique per definition, within the 63 bytes of
-- an identifier (topic names are ASCII, checked by define_topic).
CREATE FUNCTION webhook.topic_trigger_name(topic text, operation text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 'webhook ' || left(topic, 46) || ' ' || operation;

-- The JSON shape of a table's rows with an example value per column, for
-- the sample body of a row event (filters and ordering keys are checked
-- against it).
CREATE FUNCTION webhook.row_sample(rel regclass, exclude_columns text[]) RETURNS json
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (
    SELECT coalesce(json_object_agg(a.attname,
               CASE WHEN t.typcategory = 'N' THEN to_json(0)
                    WHEN t.typcategory = 'B' THEN to_json(false)
                    WHEN t.typcategory = 'S' THEN to_json(''::text)
                    WHEN t.typcategory = 'D' THEN to_json('2024-02-14T10:30:00+00:00'::text)
                    WHEN t.typcategory = 'A' THEN '[]'::json
                    ELSE 'null'::json END
               ORDER BY a.attnum), '{}'::json)
    FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname <> ALL (coalesce(exclude_columns, '{}'))
);

-- The body of a row event (webhook.watch): operation, schema, table, the
-- row and the old row without the excluded columns, and the columns an
-- update changed. NULL (nothing is sent) when an update changed only
-- excluded columns.
CREATE FUNCTION webhook.row_event_body(operation text, schema_name text, table_name text,
                                       new_row json, old_row json, exclude_columns text[]) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    changed text[];
BEGIN
    IF cardinality(exclude_columns) > 0 THEN
        new_row := (SELECT json_object_agg(c.key, c.value) FROM json_each(new_row) c
                    WHERE c.key <> ALL (exclude_columns));
        old_row := (SELECT json_object_agg(c.key, c.value) FROM json_each(old_row) c
                    WHERE c.key <> ALL (exclude_columns));
    END IF;
    IF operation = 'update' THEN
        changed := ARRAY(SELECT n.key FROM json_each_text(new_row) WITH ORDINALITY n (key, value, position)
                         JOIN json_each_text(old_row) o ON o.key = n.key
                         WHERE n.value IS DISTINCT FROM o.value
                         ORDER BY n.position);
        IF cardinality(changed) = 0 THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN json_build_object(
        'operation', operation,
        'schema', schema_name,
        'table', table_name,
        'row', new_row,
        'old_row', old_row,
        'changed_columns', changed);
END
$$;

-- The body of the generated trigger function of one definition.
CREATE FUNCTION webhook.topic_trigger_source(d webhook.topics) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    call text;
    key_type text;
    enqueue text;
BEGIN
    IF d.builder IS NOT NULL THEN
        SELECT format('%I.%I', n.nspname, p.proname), format_type(p.proargtypes[0], NULL)
          INTO call, key_type
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.oid = d.builder;
    END IF;
    enqueue := format(E'    IF body IS NOT NULL THEN\n        PERFORM webhook.enqueue(%L, body);\n    END IF;\n', d.topic);
    RETURN format(E'\n-- Generated from webhook.topics (topic %s); redefine the topic to change it.\n', d.topic)
        || E'DECLARE\n    body json;\n'
        || CASE WHEN d.timing = 'statement' THEN format(E'    keys %s;\n', key_type) ELSE '' END
        || E'BEGIN\n'
        || CASE d.timing
           WHEN 'commit' THEN
               CASE WHEN d.condition IS NOT NULL THEN
                   format(E'    -- At commit the row must still be there and still meet the condition.\n'
                          || E'    SELECT source_row.* INTO NEW FROM %s AS source_row WHERE source_row.%I = NEW.%I;\n'
                          || E'    IF NOT FOUND OR NOT coalesce((%s), false) THEN\n        RETURN NULL;\n    END IF;\n',
                          d.source_table, d.key_column, d.key_column, d.condition)
               ELSE '' END
               || format(E'    body := %s(NEW.%I::%s)::json;\n', call, d.key_column, key_type)
               || enqueue || E'    RETURN NULL;\n'
           WHEN 'before_delete' THEN
               format(E'    body := %s(OLD.%I::%s)::json;\n', call, d.key_column, key_type)
               || enqueue || E'    RETURN OLD;\n'
           WHEN 'statement' THEN
               format(E'    keys := ARRAY(SELECT r.%I FROM webhook_rows r ORDER BY 1);\n', d.key_column)
               || E'    IF cardinality(keys) = 0 THEN\n        RETURN NULL;\n    END IF;\n'
               || format(E'    body := %s(keys)::json;\n', call)
               || enqueue || E'    RETURN NULL;\n'
           ELSE -- row
               format(E'    body := webhook.row_event_body(%L, TG_TABLE_SCHEMA, TG_TABLE_NAME, %s, %s, %L);\n',
                      d.operations[1],
                      CASE WHEN d.operations[1] = 'delete' THEN 'NULL' ELSE 'row_to_json(NEW)' END,
                      CASE WHEN d.operations[1] = 'insert' THEN 'NULL' ELSE 'row_to_json(OLD)' END,
                      coalesce(d.exclude_columns, '{}'))
               || enqueue || E'    RETURN NULL;\n'
           END
        || 'END';
END
$$;

-- (Re)creates a definition's trigger function and, when its table exists,
-- its triggers. During a restore the table does not exist yet when
-- CREATE EXTENSION runs: the dump brings the table with its triggers.
CREATE FUNCTION webhook.install_topic(topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
    op text;
    changed text;
    when_clause text;
BEGIN
    SELECT * INTO STRICT d FROM webhook.topics c WHERE c.topic = topic;
    EXECUTE format('CREATE OR REPLACE FUNCTION webhook_triggers.%I() RETURNS trigger '
                   'LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                   d.trigger_function, webhook.topic_trigger_source(d));
    EXECUTE format('COMMENT ON FUNCTION webhook_triggers.%I() IS %L', d.trigger_function,
                   format('Emits %s (generated from webhook.topics).', d.topic));
    EXECUTE format('REVOKE ALL ON FUNCTION webhook_triggers.%I() FROM PUBLIC', d.trigger_function);
    IF to_regclass(d.source_table) IS NULL THEN
        RETURN;
    END IF;
    FOREACH op IN ARRAY d.operations LOOP
        when_clause := d.condition;
        IF op = 'update' AND d.timing IN ('commit', 'row') THEN
            -- An UPDATE that changes nothing (or none of the columns) emits nothing.
            changed := CASE WHEN d.columns IS NULL THEN 'OLD.* IS DISTINCT FROM NEW.*'
                            ELSE (SELECT string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ')
                                  FROM unnest(d.columns) c) END;
            when_clause := '(' || changed || ')' || coalesce(' AND (' || when_clause || ')', '');
        END IF;
        -- Last, as the most expensive test: a topic nobody subscribes to
        -- costs no trigger event (and no deferred one) and builds nothing.
        when_clause := coalesce('(' || when_clause || ') AND ', '') || format('webhook.topic_wanted(%L)', d.topic);
        EXECUTE format('CREATE %s TRIGGER %I %s %s%s ON %s %s %s %s EXECUTE FUNCTION webhook_triggers.%I()',
            CASE WHEN d.timing = 'commit' THEN 'CONSTRAINT' ELSE '' END,
            webhook.topic_trigger_name(d.topic, op),
            CASE WHEN d.timing = 'before_delete' THEN 'BEFORE' ELSE 'AFTER' END,
            upper(op),
            CASE WHEN op = 'update' AND d.columns IS NOT NULL
                 THEN ' OF ' || (SELECT string_agg(quote_ident(c), ', ') FROM unnest(d.columns) c) ELSE '' END,
            d.source_table,
            CASE WHEN d.timing = 'commit' THEN 'DEFERRABLE INITIALLY DEFERRED' ELSE '' END,
            CASE WHEN d.timing = 'statement' THEN 'REFERENCING NEW TABLE AS webhook_rows FOR EACH STATEMENT'
                 ELSE 'FOR EACH ROW' END,
            coalesce('WHEN (' || when_clause || ')', ''),
            d.trigger_function);
    END LOOP;
END
$$;

-- Drops a definition's triggers and its generated function (a function
-- that came with the extension stays: it belongs to the extension).
CREATE FUNCTION webhook.uninstall_topic(topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
    op text;
    fn regprocedure;
BEGIN
    SELECT * INTO STRICT d FROM webhook.topics c WHERE c.topic = topic;
    IF to_regclass(d.source_table) IS NOT NULL THEN
        FOREACH op IN ARRAY d.operations LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', webhook.topic_trigger_name(d.topic, op), d.source_table);
        END LOOP;
    END IF;
    fn := to_regprocedure(format('webhook_triggers.%I()', d.trigger_function));
    IF fn IS NOT NULL AND NOT EXISTS (
            SELECT FROM pg_depend x
             WHERE x.classid = 'pg_proc'::regclass AND x.objid = fn AND x.deptype = 'e') THEN
        EXECUTE format('DROP FUNCTION %s', fn);
    END IF;
END
$$;

-- Validates a definition, stores it and generates its trigger function and
-- triggers; on replace, the old ones are removed first. All or nothing.
-- documented: a topic shipped with the extension, whose table may not exist
-- yet (a restore), keyed by d.key_column.
CREATE FUNCTION webhook.save_topic(d webhook.topics, replace boolean, documented boolean DEFAULT false)
RETURNS webhook.topics
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old webhook.topics;
    rel regclass;
    key_columns text[];
    key_type oid;
    op text;
    c text;
    b record;
BEGIN
    IF d.topic IS NULL OR d.topic !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$' OR length(d.topic) > 60 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('topic: %L is not a topic name: dot-separated words of letters, digits, _ and - (at most 60 characters), e.g. ''invoice.paid''', d.topic);
    END IF;
    d.timing := coalesce(d.timing, CASE WHEN d.operations = '{delete}' THEN 'before_delete' ELSE 'commit' END);
    SELECT * INTO old FROM webhook.topics t WHERE t.topic = d.topic;
    IF FOUND AND NOT replace THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('topic: %L is already defined', d.topic),
            HINT = 'Pass replace => true to redefine it.';
    END IF;

    -- The table and its key.
    rel := to_regclass(d.source_table);
    IF rel IS NULL AND NOT documented THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('source_table: table %s does not exist', coalesce(quote_literal(d.source_table), 'NULL'));
    END IF;
    IF rel IS NOT NULL THEN
        IF (SELECT k.relkind FROM pg_class k WHERE k.oid = rel) NOT IN ('r', 'p') THEN
            RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
                MESSAGE = format('source_table: %s is not a table; topics are emitted by writes on tables', rel);
        END IF;
        d.source_table := (SELECT format('%I.%I', n.nspname, k.relname)
                             FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE k.oid = rel);
        SELECT array_agg(a.attname::text ORDER BY a.attnum), min(a.atttypid)
          INTO key_columns, key_type
          FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = rel AND i.indisprimary;
        IF d.timing <> 'row' THEN
            IF key_columns IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_table_definition',
                    MESSAGE = format('source_table: %s has no primary key; a builder is called with the row''s key', rel),
                    HINT = 'Add a primary key, or use webhook.watch, whose row events need none.';
            END IF;
            IF cardinality(key_columns) > 1 THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_table_definition',
                    MESSAGE = format('source_table: %s has a composite primary key (%s); a builder is called with one key column',
                                     rel, array_to_string(key_columns, ', ')),
                    HINT = 'Use webhook.watch, or a table with a single-column key.';
            END IF;
            d.key_column := key_columns[1];
        END IF;
    END IF;

    -- Operations, columns, timing.
    IF d.operations IS NULL OR cardinality(d.operations) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'operations: at least one of insert, update, delete is required';
    END IF;
    FOREACH op IN ARRAY d.operations LOOP
        IF op IS NULL OR op NOT IN ('insert', 'update', 'delete') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('operations: %s is not an operation; allowed: insert, update, delete', coalesce(quote_literal(op), 'NULL'));
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT o) FROM unnest(d.operations) o) <> cardinality(d.operations) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'operations: an operation is listed more than once';
    END IF;
    IF d.timing NOT IN ('commit', 'before_delete', 'statement', 'row') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('timing: %L is not supported; allowed: commit, before_delete, statement', d.timing);
    END IF;
    IF d.timing = 'before_delete' AND d.operations <> '{delete}' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'timing: before_delete is for topics on delete alone (operations => ''{delete}'')';
    END IF;
    IF d.timing IN ('commit', 'statement') AND 'delete' = ANY (d.operations) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('operations: a deleted row cannot be read at commit or after its statement (timing %s); define the delete as its own topic, built before the delete', d.timing),
            HINT = 'e.g. operations => ''{delete}'' (timing before_delete).';
    END IF;
    IF d.timing = 'statement' AND (d.condition IS NOT NULL OR d.columns IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'condition, columns: not supported with timing statement (the builder gets every row''s key and decides)';
    END IF;
    IF d.columns IS NOT NULL THEN
        IF NOT 'update' = ANY (d.operations) OR cardinality(d.columns) = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'columns: names the columns whose change fires an update; it needs operations to include update and at least one column';
        END IF;
        FOREACH c IN ARRAY d.columns LOOP
            IF rel IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = c
                                                   AND a.attnum > 0 AND NOT a.attisdropped) THEN
                RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                    MESSAGE = format('columns: %s is not a column of %s', coalesce(quote_literal(c), 'NULL'), rel);
            END IF;
        END LOOP;
    END IF;
    IF length(d.condition) > 2000 OR btrim(d.condition) = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'condition: a boolean SQL expression over NEW (insert, update) or OLD (update, delete), at most 2000 characters';
    END IF;

    -- The builder: one argument, the key (an array of keys per statement),
    -- returning json or jsonb.
    IF d.timing <> 'row' THEN
        IF d.builder IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'builder: required: a function from the row''s key to the body (json), e.g. ''public.invoice_body(bigint)''';
        END IF;
        SELECT p.pronargs, p.prorettype, p.prokind, p.proargtypes[0] AS argtype INTO b
          FROM pg_proc p WHERE p.oid = d.builder;
        IF b.prokind <> 'f' OR b.pronargs <> 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_function_definition',
                MESSAGE = format('builder: %s must be a function of one argument, the row''s key', d.builder);
        END IF;
        IF b.prorettype NOT IN ('json'::regtype, 'jsonb'::regtype) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_function_definition',
                MESSAGE = format('builder: %s returns %s; it must return json or jsonb', d.builder, format_type(b.prorettype, NULL));
        END IF;
        IF key_type IS NOT NULL THEN
            IF d.timing = 'statement' THEN
                key_type := (SELECT t.typarray FROM pg_type t WHERE t.oid = key_type);
            END IF;
            IF b.argtype <> key_type AND NOT EXISTS (
                    SELECT FROM pg_cast k WHERE k.castsource = key_type AND k.casttarget = b.argtype AND k.castcontext = 'i') THEN
                RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
                    MESSAGE = format('builder: %s takes %s, but the key of %s (%s) is %s%s', d.builder,
                                     format_type(b.argtype, NULL), rel, d.key_column, format_type(key_type, NULL),
                                     CASE WHEN d.timing = 'statement' THEN ' (an array of keys per statement)' ELSE '' END);
            END IF;
        END IF;
        IF NOT has_function_privilege(d.builder, 'EXECUTE') THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('builder: %s may not execute %s; the trigger runs the builder with the definer''s rights', current_user, d.builder);
        END IF;
    END IF;

    -- What the catalog shows.
    IF d.envelope IS NULL OR d.envelope NOT IN ('braincert', 'flat') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('envelope: %s is not supported; allowed: braincert (id, resource, action, ..., payload), flat (the body as built)',
                             coalesce(quote_literal(d.envelope), 'NULL'));
    END IF;
    IF (d.envelope = 'braincert') <> (d.resource IS NOT NULL AND d.action IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'resource, action: the braincert envelope needs both (e.g. resource => ''invoice'', action => ''paid''); a flat body has neither';
    END IF;
    IF d.sample_body IS NULL OR json_typeof(d.sample_body) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'sample_body: required: a JSON object, the body as delivered (Send Test sends it; filters and ordering keys are checked against it)';
    END IF;
    IF d.display_name IS NULL OR btrim(d.display_name) = '' OR length(d.display_name) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'display_name: must be 1 to 200 characters';
    END IF;
    d.builtin := documented;
    d.trigger_function := left(d.topic, 50) || ' ' || left(md5(concat_ws('|', d.topic, d.source_table,
        d.operations::text, d.columns::text, d.condition, d.timing, d.builder::text, d.key_column,
        d.exclude_columns::text)), 8);

    IF old.topic IS NOT NULL THEN
        PERFORM webhook.uninstall_topic(old.topic);
        DELETE FROM webhook.topics t WHERE t.topic = old.topic;
    END IF;
    INSERT INTO webhook.topics SELECT d.*;
    BEGIN
        PERFORM webhook.install_topic(d.topic);
    EXCEPTION
        WHEN syntax_error OR undefined_column OR datatype_mismatch OR undefined_function
             OR invalid_object_definition OR feature_not_supported OR invalid_text_representation
             OR undefined_table OR wrong_object_type OR ambiguous_column THEN
            RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                MESSAGE = CASE WHEN d.condition IS NOT NULL THEN 'condition: ' ELSE 'topic: ' END || SQLERRM,
                HINT = 'The condition is a trigger WHEN expression: NEW.column for insert and update, OLD.column for update and delete.';
        WHEN insufficient_privilege THEN
            RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                MESSAGE = format('source_table: %s (%s)', SQLERRM, d.source_table),
                HINT = 'Defining a topic creates triggers on the table: that needs its owner or the TRIGGER privilege.';
    END;
    RETURN d;
END
$$;

-- Keys a row of webhook.topics from define_topic's arguments: on replace,
-- what is not given is kept from the current definition.
CREATE FUNCTION webhook.define_topic(
    topic text,
    source_table text,
    builder text DEFAULT NULL,
    operations text[] DEFAULT '{insert}',
    columns text[] DEFAULT NULL,
    condition text DEFAULT NULL,
    timing text DEFAULT NULL,
    envelope text DEFAULT NULL,
    resource text DEFAULT NULL,
    action text DEFAULT NULL,
    display_name text DEFAULT NULL,
    description text DEFAULT NULL,
    sample_body json DEFAULT NULL,
    replace boolean DEFAULT false
) RETURNS webhook.topics
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    old webhook.topics;
    d webhook.topics;
BEGIN
    IF timing = 'row' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'timing: row events are defined with webhook.watch(table)';
    END IF;
    SELECT * INTO old FROM webhook.topics t WHERE t.topic = topic;
    d.topic := topic;
    d.source_table := source_table;
    IF builder IS NOT NULL THEN
        -- 'schema.name(argument types)', or a name that is not overloaded.
        d.builder := CASE WHEN strpos(builder, '(') > 0 THEN to_regprocedure(builder)
                          ELSE to_regproc(builder)::oid::regprocedure END;
        IF d.builder IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_function',
                MESSAGE = format('builder: function %L does not exist (or its name is overloaded)', builder),
                HINT = 'Name it with its schema and argument type, e.g. ''public.invoice_body(bigint)''.';
        END IF;
    END IF;
    d.operations := operations;
    d.columns := columns;
    d.condition := condition;
    d.timing := timing;
    IF envelope IS NULL AND resource IS NULL AND action IS NULL AND replace THEN
        -- A documented topic rebound to another table keeps its envelope.
        d.envelope := old.envelope;
        d.resource := old.resource;
        d.action := old.action;
    ELSE
        d.envelope := coalesce(envelope, CASE WHEN resource IS NOT NULL OR action IS NOT NULL THEN 'braincert' ELSE 'flat' END);
        d.resource := resource;
        d.action := action;
    END IF;
    d.source := coalesce(old.source, 'custom');
    d.display_name := coalesce(display_name, old.display_name, topic);
    d.description := coalesce(description, old.description,
        format('Fires on %s of %s.', array_to_string(operations, ', '), source_table));
    d.sample_body := coalesce(sample_body, old.sample_body);
    RETURN webhook.save_topic(d, replace);
END
$$;
COMMENT ON FUNCTION webhook.define_topic IS 'Define (or with replace => true redefine) a topic: which writes on which table emit it and which function builds its body; generates its triggers.';

-- The documented LMS topics (sql/topics/*.sql) are defined through this.
CREATE FUNCTION webhook.define_documented_topic(
    topic text, display_name text, description text, source text,
    source_table text, builder regprocedure, sample_body json,
    operations text[] DEFAULT '{insert}', columns text[] DEFAULT NULL, condition text DEFAULT NULL,
    timing text DEFAULT NULL, resource text DEFAULT NULL, action text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
BEGIN
    d.topic := topic;
    d.display_name := display_name;
    d.description := description;
    d.source := source;
    d.envelope := CASE WHEN resource IS NULL THEN 'flat' ELSE 'braincert' END;
    d.resource := resource;
    d.action := action;
    d.sample_body := sample_body;
    d.source_table := source_table;
    d.builder := builder;
    d.operations := operations;
    d.columns := columns;
    d.condition := condition;
    d.timing := timing;
    d.key_column := 'id';
    PERFORM webhook.save_topic(d, false, true);
END
$$;

-- Drops a topic's definition, triggers and generated function.
CREATE FUNCTION webhook.drop_topic(topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
    users text;
BEGIN
    SELECT * INTO d FROM webhook.topics t WHERE t.topic = topic;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('topic: %s is not defined', coalesce(quote_literal(topic), 'NULL')),
            HINT = 'See SELECT topic FROM webhook.topics.';
    END IF;
    IF d.source <> 'custom' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('topic: %L is a documented LMS topic and cannot be dropped', topic),
            HINT = 'Rebind it to your own table with webhook.define_topic(..., replace => true), or leave it unsubscribed.';
    END IF;
    SELECT string_agg(quote_literal(w.name), ', ' ORDER BY w.name) INTO users
      FROM webhook.webhooks w WHERE w.topics @> ARRAY[topic];
    IF users IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = format('topic: %L is subscribed by webhook %s', topic, users),
            HINT = 'Remove it from their topics (webhook.update_webhook) first.';
    END IF;
    PERFORM webhook.uninstall_topic(topic);
    DELETE FROM webhook.topics t WHERE t.topic = topic;
END
$$;
COMMENT ON FUNCTION webhook.drop_topic IS 'Drop a topic defined with define_topic or watch, with its triggers; refused while a webhook subscribes to it.';

-- Row events on any table: one topic per operation, <schema>.<table>.<operation>.
CREATE FUNCTION webhook.watch(
    source_table text,
    operations text[] DEFAULT '{insert,update,delete}',
    columns text[] DEFAULT NULL,
    exclude_columns text[] DEFAULT NULL,
    condition text DEFAULT NULL
) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    rel regclass := to_regclass(source_table);
    schema_name text;
    table_name text;
    op text;
    c text;
    d webhook.topics;
    old webhook.topics;
    sample json;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('source_table: table %s does not exist', coalesce(quote_literal(source_table), 'NULL'));
    END IF;
    SELECT n.nspname, k.relname INTO schema_name, table_name
      FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE k.oid = rel;
    FOREACH c IN ARRAY coalesce(exclude_columns, '{}') LOOP
        IF c IS NULL OR NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = c
                                        AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('exclude_columns: %s is not a column of %s', coalesce(quote_literal(c), 'NULL'), rel);
        END IF;
    END LOOP;
    IF operations IS NULL OR cardinality(operations) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'operations: at least one of insert, update, delete is required';
    END IF;
    IF columns IS NOT NULL AND NOT 'update' = ANY (operations) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'columns: names the columns whose change fires an update; it needs operations to include update';
    END IF;
    sample := webhook.row_sample(rel, exclude_columns);
    FOREACH op IN ARRAY operations LOOP
        d := NULL;
        d.topic := format('%s.%s.%s', schema_name, table_name, op);
        SELECT * INTO old FROM webhook.topics t WHERE t.topic = d.topic;
        IF FOUND AND old.timing <> 'row' THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = format('source_table: topic %L already exists and is not a row event', d.topic);
        END IF;
        d.source_table := source_table;
        d.operations := ARRAY[op];
        d.columns := CASE WHEN op = 'update' THEN columns END;
        d.condition := condition;
        d.timing := 'row';
        d.exclude_columns := exclude_columns;
        d.source := 'custom';
        d.envelope := 'flat';
        d.display_name := format('%s.%s %s', schema_name, table_name, op);
        d.description := format('Fires when a row of %s is %s (webhook.watch).', rel,
                                CASE op WHEN 'insert' THEN 'inserted' WHEN 'update' THEN 'updated' ELSE 'deleted' END);
        d.sample_body := json_build_object(
            'operation', op, 'schema', schema_name, 'table', table_name,
            'row', CASE WHEN op <> 'delete' THEN sample END,
            'old_row', CASE WHEN op <> 'insert' THEN sample END,
            'changed_columns', CASE WHEN op = 'update' THEN
                coalesce(to_json(columns), (SELECT json_agg(k) FROM json_object_keys(sample) k)) END);
        PERFORM webhook.save_topic(d, true);
        RETURN NEXT d.topic;
    END LOOP;
END
$$;
COMMENT ON FUNCTION webhook.watch IS 'Row events on any table: defines the topics <schema>.<table>.insert/.update/.delete, whose body carries the operation, the row, the old row and the changed columns.';

CREATE FUNCTION webhook.unwatch(source_table text, operations text[] DEFAULT '{insert,update,delete}')
RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    rel regclass := to_regclass(source_table);
    t text;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('source_table: table %s does not exist', coalesce(quote_literal(source_table), 'NULL'));
    END IF;
    FOR t IN
        SELECT c.topic FROM webhook.topics c
         WHERE c.timing = 'row' AND to_regclass(c.source_table) = rel AND c.operations[1] = ANY (operations)
         ORDER BY c.topic
    LOOP
        PERFORM webhook.drop_topic(t);
        RETURN NEXT t;
    END LOOP;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('source_table: %s is not watched for %s', rel, array_to_string(operations, ', '));
    END IF;
END
$$;
COMMENT ON FUNCTION webhook.unwatch IS 'Stop row events on a table (drops the topics watch defined); refused while a webhook subscribes to one.';

-- Dump and restore: the documented definitions come with CREATE EXTENSION;
-- the others are the installation's data. A restored row replaces the one
-- CREATE EXTENSION made (a documented topic rebound to the LMS's own table).
CREATE FUNCTION webhook.topics_replace_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM webhook.topics t WHERE t.topic = NEW.topic;
    RETURN NEW;
END
$$;
CREATE TRIGGER topics_replace_row BEFORE INSERT ON webhook.topics
    FOR EACH ROW EXECUTE FUNCTION webhook.topics_replace_row();
SELECT pg_catalog.pg_extension_config_dump('webhook.topics', 'WHERE NOT builtin');

-- The topic reference in Markdown, generated from the definitions (the
-- documented ones are docs/topics.md; a test keeps the two the same).
CREATE FUNCTION webhook.topic_reference() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (
    SELECT E'# Topic reference\n\n'
        || E'Generated by `SELECT webhook.topic_reference()` from the topic definitions in\n'
        || E'`webhook.topics` (for the documented topics: `sql/topics/*.sql`). Which write fires\n'
        || E'each documented topic: [lms.md](lms.md). BrainCert topics are enveloped\n'
        || E'(`resource`/`action` below); AOM events are flat.\n\n'
        || string_agg(format(E'## `%s`: %s\n\n%s Source: %s%s.\n\n'
                              || E'Emitted by %s on `%s`, %s%s%s.\n\n```json\n%s\n```\n',
               t.topic, t.display_name, t.description, t.source,
               CASE WHEN t.envelope = 'braincert' THEN format(', envelope %s / %s', t.resource, t.action) ELSE '' END,
               array_to_string(t.operations, ', '), t.source_table,
               CASE t.timing WHEN 'commit' THEN 'built at commit'
                             WHEN 'before_delete' THEN 'built before the delete'
                             WHEN 'statement' THEN 'one event per statement'
                             ELSE 'the row event' END,
               CASE WHEN t.builder IS NOT NULL THEN format(' by `%s`', t.builder) ELSE '' END,
               concat(CASE WHEN t.columns IS NOT NULL THEN format('; an update fires when %s changes', array_to_string(t.columns, ', ')) END,
                      CASE WHEN t.condition IS NOT NULL THEN format('; only when `%s`', t.condition) END),
               t.sample_body::text),
           E'\n' ORDER BY array_position(ARRAY['braincert', 'aom', 'custom'], t.source), t.topic)
    FROM webhook.topics t
);
COMMENT ON FUNCTION webhook.topic_reference IS 'The topic reference (names, when they fire, sample bodies) in Markdown, from the definitions; docs/topics.md is its output on a fresh install.';

-- The documented topics, as sql/topics/*.sql define them (the display names,
-- descriptions and sample bodies are kept from 0.1.0).
DO $$
DECLARE
    r record;
    d webhook.topics;
    defined integer := 0;
BEGIN
    FOR r IN
        SELECT t AS kept, def.*
          FROM webhook.topics t
          JOIN (VALUES
        ('user.created', 'lms.users', 'lms.user_created_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('account.created', 'lms.users', 'lms.account_created_body(bigint)', '{insert}', NULL, NULL, NULL),
        ('user.updated', 'lms.users', 'lms.user_payload(bigint)', '{update}', NULL, NULL, NULL),
        ('user.deleted', 'lms.users', 'lms.user_payload(bigint)', '{delete}', NULL, NULL, NULL),
        ('group.created', 'lms.groups', 'lms.group_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('course.created', 'lms.courses', 'lms.course_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('course.updated', 'lms.courses', 'lms.course_payload(bigint)', '{update}', NULL, NULL, NULL),
        ('course.deleted', 'lms.courses', 'lms.course_payload(bigint)', '{delete}', NULL, NULL, NULL),
        ('bundle.created', 'lms.bundles', 'lms.bundle_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('bundle.updated', 'lms.bundles', 'lms.bundle_payload(bigint)', '{update}', NULL, NULL, NULL),
        ('bundle.deleted', 'lms.bundles', 'lms.bundle_payload(bigint)', '{delete}', NULL, NULL, NULL),
        ('test.created', 'lms.tests', 'lms.test_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('test.updated', 'lms.tests', 'lms.test_payload(bigint)', '{update}', NULL, NULL, NULL),
        ('test.deleted', 'lms.tests', 'lms.test_payload(bigint)', '{delete}', NULL, NULL, NULL),
        ('live_class.created', 'lms.live_classes', 'lms.live_class_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('live_class.updated', 'lms.live_classes', 'lms.live_class_payload(bigint)', '{update}', NULL, NULL, NULL),
        ('live_class.deleted', 'lms.live_classes', 'lms.live_class_payload(bigint)', '{delete}', NULL, NULL, NULL),
        ('product.created', 'lms.products', 'lms.product_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('product.deleted', 'lms.products', 'lms.product_payload(bigint)', '{delete}', NULL, NULL, NULL),
        ('course.enrollment', 'lms.course_enrollments', 'lms.course_enrollment_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('course.enrolled', 'lms.course_enrollments', 'lms.course_enrolled_body(bigint[])', '{insert}', NULL, NULL, 'statement'),
        ('test.enrollment', 'lms.test_enrollments', 'lms.test_enrollment_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('live_class.enrollment', 'lms.live_class_enrollments', 'lms.live_class_enrollment_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('course.completed', 'lms.course_completions', 'lms.course_completion_payload(bigint)', '{insert}', NULL, NULL, NULL),
        ('sale.new', 'lms.orders', 'lms.sale_payload(bigint)', '{insert,update}', '{status}', 'NEW.status = ''COMPLETED''', NULL),
        ('order.placed', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''COMPLETED''', NULL),
        ('order.failed', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''FAILED''', NULL),
        ('order.refunded', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''REFUNDED''', NULL),
        ('payment.pending', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''PENDING''', NULL),
        ('test.completed', 'lms.test_attempts', 'lms.test_completed_payload(bigint)', '{insert,update}', '{completed_at}', 'NEW.completed_at IS NOT NULL', NULL),
        ('quiz.submitted', 'lms.quiz_submissions', 'lms.quiz_submission_body(bigint)', '{insert}', NULL, NULL, NULL),
        ('assignment.submitted', 'lms.assignment_submissions', 'lms.assignment_submitted_body(bigint)', '{insert}', NULL, NULL, NULL),
        ('assignment.evaluated', 'lms.assignment_submissions', 'lms.assignment_evaluated_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''evaluated''', NULL),
        ('assignment.rejected', 'lms.assignment_submissions', 'lms.assignment_evaluated_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''rejected''', NULL),
        ('discussion.submitted', 'lms.discussion_posts', 'lms.discussion_post_body(bigint)', '{insert}', NULL, NULL, NULL),
        ('announcement.created', 'lms.announcements', 'lms.announcement_body(bigint)', '{insert,update}', '{published_at}', 'NEW.published_at IS NOT NULL', NULL)
          ) AS def (topic, source_table, builder, operations, columns, condition, timing) ON def.topic = t.topic
    LOOP
        d := r.kept;
        d.source_table := r.source_table;
        d.builder := r.builder::regprocedure;
        d.operations := r.operations::text[];
        d.columns := r.columns::text[];
        d.condition := r.condition;
        d.timing := r.timing;
        d.key_column := 'id';
        DELETE FROM webhook.topics t WHERE t.topic = d.topic;
        PERFORM webhook.save_topic(d, false, true);
        defined := defined + 1;
    END LOOP;
    IF defined <> (SELECT count(*) FROM webhook.topics) THEN
        RAISE EXCEPTION 'webhook_emitter upgrade: % topics have no definition', (SELECT count(*) FROM webhook.topics) - defined;
    END IF;
END
$$;
ALTER TABLE webhook.topics
    ALTER COLUMN source_table SET NOT NULL,
    ALTER COLUMN operations SET NOT NULL,
    ALTER COLUMN timing SET NOT NULL,
    ALTER COLUMN trigger_function SET NOT NULL,
    ADD CONSTRAINT topics_envelope_check
        CHECK ((envelope = 'braincert') = (resource IS NOT NULL AND action IS NOT NULL)),
    ADD CONSTRAINT topics_builder_check CHECK ((builder IS NULL) = (timing = 'row'));

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
GRANT INSERT, UPDATE, DELETE ON webhook.topics TO webhook_admin;
GRANT USAGE, CREATE ON SCHEMA webhook_triggers TO webhook_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhook TO webhook_admin;

-- Ask the launcher for this database's delivery worker (at commit).
SELECT webhook.request_worker();
