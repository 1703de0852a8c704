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
        IF NEW.headers IS NULL THEN
            NEW.headers := '{}';
        END IF;
        -- Every rule about the row's own values (src/settings/rules.rs); the
        -- filter is check_filter's (below), never parsed there.
        PERFORM webhook.check_webhook(to_jsonb(NEW) - 'filter');
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
        IF NEW.outcome_callback IS NOT NULL OR NEW.outcome_callback_owner IS NOT NULL THEN
            PERFORM webhook.check_outcome_callback(NEW.outcome_callback::oid, NEW.outcome_callback_owner::oid);
        END IF;
        PERFORM webhook.check_ordering(NEW.ordering, NEW.ordering_key, NEW.topics);
        PERFORM webhook.check_filter(NEW.filter, NEW.topics);
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
-- webhook_admin reads webhook.webhooks but writes it only through these
-- functions (table privileges would also let it lock the table, and every
-- writer and the worker read it): the ones below are SECURITY DEFINER;
-- create_webhook and update_webhook are Rust (src/settings/api.rs, next to
-- the settings' model and rules) that run as the caller and write as the
-- extension owner, so that an outcome callback's owner is the caller.

COMMENT ON FUNCTION webhook.create_webhook IS 'Register a webhook; returns its id. Raises 22023 naming the field on bad input.';
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
    -- On Citus, every node takes the enabled state (and drops what it
    -- held with discard_held), whatever this node's was (cluster.sql).
    PERFORM set_config('webhook.enabled_set_by',
                       CASE WHEN coalesce(discard_held, false) THEN 'enable_discarding_held' ELSE 'enable' END, true);
    PERFORM webhook.update_webhook(id, enabled => true);
    PERFORM set_config('webhook.enabled_set_by', '', true);
    RETURN held;
END
$$;
COMMENT ON FUNCTION webhook.enable_webhook IS 'Enable a webhook; its held deliveries go out oldest first (or are dropped with discard_held => true). Returns how many were held.';

CREATE FUNCTION webhook.disable_webhook(id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    -- On Citus, every node takes the disabled state (cluster.sql).
    PERFORM set_config('webhook.enabled_set_by', 'disable', true);
    UPDATE webhook.webhooks w SET enabled = false,
        disabled_reason = coalesce(reason, 'disabled by ' || session_user), disabled_at = now()
    WHERE w.id = id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('id: webhook %s does not exist', id);
    END IF;
    PERFORM set_config('webhook.enabled_set_by', '', true);
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
