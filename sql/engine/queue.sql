-- webhook_emitter: the queue's code: holding and releasing deliveries,
-- replication marks, the subscription cache's triggers, enqueue. Tables are
-- in state.sql.

-- NOTIFY on channel webhook_emitter, so an application can LISTEN instead
-- of polling: {"event": "delivery_dead" | "webhook_disabled" | "outcome_dead", ...}.
CREATE FUNCTION webhook.notify(event text, facts jsonb) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_notify('webhook_emitter', (jsonb_build_object('event', event) || facts)::text) $$;

-- Deliveries that went dead (the worker's outcomes, crash loops, lost
-- attempts with no retry left), each announced once.
CREATE FUNCTION webhook.notify_dead_deliveries(ids bigint[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    SELECT webhook.notify('delivery_dead', jsonb_build_object('delivery_id', d.id, 'webhook_id', d.webhook_id,
               'event_id', d.event_id, 'topic', (SELECT e.topic FROM webhook.events e WHERE e.id = d.event_id),
               'attempts', d.attempts, 'error', left(d.last_error, 500)))
      FROM webhook.deliveries d
     WHERE d.id = ANY (ids) AND d.status = 'dead'
$$;

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
        IF OLD.enabled THEN
            PERFORM webhook.notify('webhook_disabled', jsonb_build_object('webhook_id', NEW.id,
                'webhook', NEW.name, 'reason', left(NEW.disabled_reason, 500)));
        END IF;
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

-- webhook.topic_wanted(topic) (Rust, src/write/wanted.rs) is the test in
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

-- webhook.enqueue(topic, body) (Rust, src/write/enqueue.rs) queues an event
-- for every webhook subscribed to the topic whose filter it matches (held
-- for the disabled ones); the generated topic triggers call it. It caches
-- the switch, the tenant id and each topic's envelope under the same
-- generation, so changes to those (and to the topic catalog) bump it too.
-- SECURITY DEFINER with a fixed search_path: the generated functions call
-- it as the topic's definer (a webhook_admin member, who may not write the
-- queue tables); EXECUTE is webhook_admin's only.
COMMENT ON FUNCTION webhook.enqueue IS 'Queue an event (called by the generated topic triggers); returns its id, or NULL when nobody subscribes.';
