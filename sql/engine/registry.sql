-- webhook_emitter: the webhook registry's code: settings row upkeep, the
-- validation of every webhook write, and the management API. Tables are in
-- state.sql.

-- A restore brings the dumped row back after CREATE EXTENSION inserted the
-- default one: an insert replaces the row, so there is always exactly one.
CREATE FUNCTION webhook.settings_replace_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM webhook.settings;
    RETURN NEW;
END
$$;
CREATE TRIGGER settings_replace_row BEFORE INSERT ON webhook.settings
    FOR EACH ROW EXECUTE FUNCTION webhook.settings_replace_row();
-- Also for a logical replication subscriber's initial copy (which has a
-- settings row of its own).
ALTER TABLE webhook.settings ENABLE ALWAYS TRIGGER settings_replace_row;

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

-- Validates every INSERT/UPDATE, whether from the API functions or plain DML.
CREATE FUNCTION webhook.validate_webhook() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
    samples json;
    state_columns CONSTANT text[] := ARRAY['enabled', 'disabled_reason', 'disabled_at', 'failing_since', 'updated_at',
                                           'deletion_requested_at'];
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
        IF EXISTS (SELECT FROM webhook.webhooks w WHERE w.name = NEW.name AND w.id IS DISTINCT FROM NEW.id
                                                    AND w.deletion_requested_at IS NULL) THEN
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
        -- RFC 6750's b64token: what an Authorization header can carry.
        IF NEW.bearer_token IS NOT NULL AND (length(NEW.bearer_token) > 4096
                OR NEW.bearer_token !~ '^[A-Za-z0-9._~+/-]+=*$') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'bearer_token: must be 1 to 4096 characters of A-Z, a-z, 0-9 and - . _ ~ + / (then = padding), as RFC 6750 allows';
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

CREATE TRIGGER validate_webhook BEFORE INSERT OR UPDATE ON webhook.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhook.validate_webhook();

-- Management API -----------------------------------------------------------
-- SECURITY DEFINER: webhook_admin reads webhook.webhooks but writes it only
-- through these functions (table privileges would also let it lock the
-- table, and every writer and the worker read it).

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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

-- Never waits for the application: a writer that queued an event for the
-- webhook holds its row (FOR KEY SHARE) until it commits, maybe for long
-- (a forgotten prepared transaction). Then the webhook is disabled, its
-- name freed, and the worker deletes it once those writers are done.
CREATE FUNCTION webhook.delete_webhook(id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    BEGIN
        PERFORM FROM webhook.webhooks w WHERE w.id = id AND w.deletion_requested_at IS NULL FOR UPDATE NOWAIT;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('id: webhook %s does not exist', id);
        END IF;
        DELETE FROM webhook.webhooks w WHERE w.id = id;
        RETURN;
    EXCEPTION WHEN lock_not_available THEN
        NULL;
    END;
    UPDATE webhook.webhooks w
       SET enabled = false, deletion_requested_at = now(),
           disabled_reason = format('deleted by %s; removed once the transactions queuing events for it end', session_user)
     WHERE w.id = id;
END
$$;

-- Enable a webhook: the deliveries it held while disabled go out oldest
-- first, or are dropped with discard_held. Returns how many it held.
-- SECURITY DEFINER: webhook_admin may not delete from the queue itself.
CREATE FUNCTION webhook.enable_webhook(id bigint, discard_held boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

CREATE FUNCTION webhook.disable_webhook(id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    UPDATE webhook.webhooks w SET enabled = false,
        disabled_reason = coalesce(reason, 'disabled by ' || session_user), disabled_at = now()
    WHERE w.id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('id: webhook %s does not exist', id);
    END IF;
END
$$;

CREATE FUNCTION webhook.set_enabled(enabled boolean) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    UPDATE webhook.settings SET enabled = coalesce(set_enabled.enabled, false), updated_at = now();
END;
COMMENT ON FUNCTION webhook.set_enabled IS 'The global switch: when off, nothing is queued.';

CREATE FUNCTION webhook.set_tenant_id(tenant_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    IF tenant_id IS NULL OR tenant_id = '' OR length(tenant_id) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'tenant_id: must be 1 to 200 characters';
    END IF;
    UPDATE webhook.settings s SET tenant_id = tenant_id, updated_at = now();
END
$$;
COMMENT ON FUNCTION webhook.set_tenant_id IS 'The value sent as tenant_id/domain_id in BrainCert envelopes.';
