-- webhook_emitter: the durable queue (events, deliveries) and the delivery log.

-- One row per event, stored once however many webhooks receive it.
CREATE TABLE webhook.events (
    id         text PRIMARY KEY,            -- ULID; the webhook-id header and envelope id
    topic      text NOT NULL,
    body       json NOT NULL,               -- json, not jsonb: key order as built
    tenant_id  text NOT NULL,
    is_test    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_created_at_idx ON webhook.events (created_at);
COMMENT ON TABLE webhook.events IS 'Queued events; the body is the document delivered (before per-webhook rendering).';

-- One row per (event, webhook): the delivery log.
CREATE TABLE webhook.deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         text   NOT NULL REFERENCES webhook.events (id) ON DELETE CASCADE,
    webhook_id       bigint NOT NULL,   -- no FK: the write path must not lock webhook rows
    status           text   NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    is_test          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due_idx ON webhook.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_webhook_idx ON webhook.deliveries (webhook_id, created_at);
CREATE INDEX deliveries_event_idx ON webhook.deliveries (event_id);
CREATE INDEX deliveries_finished_idx ON webhook.deliveries (created_at)
    WHERE status IN ('delivered', 'dead');
COMMENT ON TABLE webhook.deliveries IS 'One row per event and webhook: status pending/delivering/delivered/failed/dead.';

-- One row per HTTP attempt.
CREATE TABLE webhook.attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint NOT NULL REFERENCES webhook.deliveries (id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      double precision NOT NULL,
    status_code      integer,
    response_headers jsonb,
    response_excerpt text,
    error            text
);
CREATE INDEX attempts_delivery_idx ON webhook.attempts (delivery_id);
COMMENT ON TABLE webhook.attempts IS 'Every HTTP attempt: timing, status code, response excerpt, error.';

-- Deleting a webhook removes its deliveries (there is no FK, see above).
CREATE FUNCTION webhook.forget_webhook_deliveries() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM webhook.deliveries d WHERE d.webhook_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER forget_webhook_deliveries AFTER DELETE ON webhook.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhook.forget_webhook_deliveries();

-- The write path ---------------------------------------------------------------

-- True when an event of this topic would be delivered to anyone. Triggers call
-- it first so that nobody pays for payloads nobody receives.
CREATE FUNCTION webhook.topic_wanted(topic text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT s.enabled AND EXISTS (
        SELECT FROM webhook.webhooks w WHERE w.enabled AND w.topics @> ARRAY[topic_wanted.topic])
    FROM webhook.settings s;
END;

-- Queue an event for every enabled webhook subscribed to the topic. BrainCert
-- topics get their envelope here; AOM bodies are queued as given.
CREATE FUNCTION webhook.enqueue(topic text, body json) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    s webhook.settings;
    t webhook.topics;
    event_id text;
    ts timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO s FROM webhook.settings;
    IF NOT s.enabled THEN
        RETURN NULL;
    END IF;
    SELECT * INTO t FROM webhook.topics c WHERE c.topic = topic;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('topic: unknown topic %L', topic), HINT = 'See SELECT topic FROM webhook.topics.';
    END IF;
    IF NOT EXISTS (SELECT FROM webhook.webhooks w WHERE w.enabled AND w.topics @> ARRAY[topic]) THEN
        RETURN NULL;  -- nobody listens: queue nothing
    END IF;
    event_id := webhook.new_event_id();
    IF t.source = 'braincert' THEN
        body := json_build_object(
            'id', event_id,
            'resource', t.resource,
            'action', t.action,
            'domain_id', s.tenant_id,
            'tenant_id', s.tenant_id,
            'created_at', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'timestamp', floor(extract(epoch FROM ts))::bigint,
            'payload', body);
    END IF;
    INSERT INTO webhook.events (id, topic, body, tenant_id, created_at)
    VALUES (event_id, topic, body, s.tenant_id, ts);
    INSERT INTO webhook.deliveries (event_id, webhook_id)
    SELECT event_id, w.id FROM webhook.webhooks w WHERE w.enabled AND w.topics @> ARRAY[topic];
    PERFORM webhook.wake_worker_at_commit();
    RETURN event_id;
END
$$;
COMMENT ON FUNCTION webhook.enqueue IS 'Queue an event (called by the lms triggers); returns its id, or NULL when nobody subscribes.';
