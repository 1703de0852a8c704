-- webhook_emitter: the durable queue (events, deliveries) and the delivery log.

-- One row per event, stored once however many webhooks receive it.
CREATE TABLE webhook.events (
    id         text PRIMARY KEY,            -- ULID; the webhook-id header and envelope id
    topic      text NOT NULL,
    body       json NOT NULL,               -- json, not jsonb: key order as built
    tenant_id  text NOT NULL,
    is_test    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- 0.3.0: an event whose builder raised (body 'null'): the error and the
    -- row's key (as text), until webhook.rebuild_events builds it.
    build_error text,
    build_key   text
);
CREATE INDEX events_unbuilt_idx ON webhook.events (topic) WHERE build_error IS NOT NULL;
-- No index on created_at: ids are ULIDs, ordered by creation time, so
-- pruning finds old events through the primary key.
COMMENT ON TABLE webhook.events IS 'Queued events; the body is the document delivered (before per-webhook rendering).';

-- One row per (event, webhook): the delivery log. A delivery of a disabled
-- webhook is "held": kept, not sent, until the webhook is enabled again.
CREATE TABLE webhook.deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         text   NOT NULL,  -- no FK: one check less per queued row; pruning removes both
    -- The FK keeps a delete from racing a writer: enqueue locks the webhooks
    -- it fans out to (FOR KEY SHARE), so a delete either waits for the
    -- writer and cascades to its deliveries, or the writer skips the webhook.
    webhook_id       bigint NOT NULL REFERENCES webhook.webhooks (id) ON DELETE CASCADE,
    status           text   NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    is_test          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- 0.2.0: the sequence an ordered webhook's delivery belongs to ('' for
    -- fifo, the value at ordering_key for per_key); NULL when unordered.
    order_key        text,
    CONSTRAINT deliveries_status_check
        CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'dead', 'held', 'unbuilt', 'replicated'))
);
-- Unordered deliveries are claimed by due time; ordered ones only at the
-- head of their sequence, found through deliveries_sequence_idx, so a long
-- blocked sequence is never scanned by the claim.
CREATE INDEX deliveries_due_idx ON webhook.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed') AND order_key IS NULL;
CREATE INDEX deliveries_sequence_idx ON webhook.deliveries (webhook_id, order_key, id)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed', 'delivering', 'held');
CREATE INDEX deliveries_webhook_idx ON webhook.deliveries (webhook_id, created_at);
CREATE INDEX deliveries_event_idx ON webhook.deliveries (event_id);
CREATE INDEX deliveries_finished_idx ON webhook.deliveries (created_at)
    WHERE status IN ('delivered', 'dead', 'held');
CREATE INDEX deliveries_held_idx ON webhook.deliveries (webhook_id, created_at)
    WHERE status = 'held';
CREATE INDEX deliveries_leased_idx ON webhook.deliveries (lease_until)
    WHERE status = 'delivering';
CREATE INDEX deliveries_unbuilt_idx ON webhook.deliveries (webhook_id) WHERE status = 'unbuilt';
COMMENT ON TABLE webhook.deliveries IS 'One row per event and webhook: status pending/delivering/delivered/failed/dead, held while the webhook is disabled, unbuilt while its builder fails (webhook.rebuild_events), replicated when it came by logical replication (never sent here).';

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

-- The queue is the installation's data: pg_dump dumps it (and the identity
-- sequences), so a restore keeps pending deliveries and their event bodies.
SELECT pg_catalog.pg_extension_config_dump('webhook.events', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts_id_seq', '');

-- A webhook disabled (by hand, by a 410, by webhook.disable_after) holds
-- its queued deliveries; enabled again, it gets them oldest first.
-- SECURITY DEFINER: it runs for whoever changes the webhook (webhook_admin),
-- who may not write the queue.
CREATE FUNCTION webhook.hold_or_release_deliveries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

-- Logical replication -----------------------------------------------------------

-- A publication FOR ALL TABLES carries the queue too. Events are sent by
-- the database that queued them: on a subscriber, a delivery that arrives
-- by replication (the apply worker runs with session_replication_role =
-- replica, so only these triggers fire) is marked 'replicated', which no
-- worker claims, and stays so when the publisher's worker updates it.
-- The rows still apply cleanly (same keys), so the publisher's updates
-- and pruning find them. On the publisher these triggers never fire.
CREATE FUNCTION webhook.mark_replicated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.status := 'replicated';
        NEW.lease_until := NULL;
        RETURN NEW;
    END IF;
    UPDATE webhook.deliveries d SET status = 'replicated', lease_until = NULL
     WHERE d.id = NEW.id AND d.status <> 'replicated';
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_replicated BEFORE INSERT ON webhook.deliveries
    FOR EACH ROW EXECUTE FUNCTION webhook.mark_replicated();
-- AFTER, not BEFORE: a BEFORE UPDATE row trigger, even one that never
-- fires, makes every UPDATE of the worker lock the row first.
CREATE TRIGGER deliveries_still_replicated AFTER UPDATE ON webhook.deliveries
    FOR EACH ROW WHEN (NEW.status <> 'replicated') EXECUTE FUNCTION webhook.mark_replicated();
ALTER TABLE webhook.deliveries ENABLE REPLICA TRIGGER deliveries_replicated;
ALTER TABLE webhook.deliveries ENABLE REPLICA TRIGGER deliveries_still_replicated;

-- The write path ---------------------------------------------------------------

-- webhook.topic_wanted(topic) (Rust, src/api/wanted.rs) is the test in
-- every generated trigger's WHEN clause: true when an event of the topic
-- would be queued for anyone (a disabled webhook holds its events), so that
-- nobody pays for payloads nobody receives. Each backend caches the
-- subscribed topics; these triggers make every backend reload them after a
-- change to the subscriptions or the global switch commits.
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF topics ON webhook.webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF enabled, tenant_id ON webhook.settings
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE ON webhook.topics
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();
-- Replicated changes (a logical replication subscriber) count too.
ALTER TABLE webhook.webhooks ENABLE ALWAYS TRIGGER subscriptions_changed;
ALTER TABLE webhook.settings ENABLE ALWAYS TRIGGER subscriptions_changed;
ALTER TABLE webhook.topics ENABLE ALWAYS TRIGGER subscriptions_changed;

-- webhook.enqueue(topic, body) (Rust, src/api/enqueue.rs) queues an event
-- for every webhook subscribed to the topic whose filter it matches (held
-- for the disabled ones); the generated topic triggers call it. It caches
-- the switch, the tenant id and each topic's envelope under the same
-- generation, so changes to those (and to the topic catalog) bump it too.
-- SECURITY DEFINER with a fixed search_path: the generated functions call
-- it as the topic's definer (a webhook_admin member, who may not write the
-- queue tables); EXECUTE is webhook_admin's only.
COMMENT ON FUNCTION webhook.enqueue IS 'Queue an event (called by the generated topic triggers); returns its id, or NULL when nobody subscribes.';
