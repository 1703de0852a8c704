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
               'event_id', d.event_id, 'topic', (SELECT e.topic FROM webhook.events e WHERE e.id = d.event_id AND e.slot = d.slot),
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
        -- Announced where the change is made: not on a Citus worker node
        -- applying the coordinator's (a prepared transaction may not NOTIFY).
        IF OLD.enabled AND NOT webhook.applying_registry() THEN
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

-- The fan-out -------------------------------------------------------------------

-- The write path queues one row per event (webhook.enqueue, with its
-- transaction's id); the worker makes the deliveries, a batch of committed
-- events at a time, the way PgQ's consumers read batches: the events of
-- the transactions that were not visible in the last snapshot, read in one
-- statement that also stores that statement's snapshot as the new one.
-- A transaction still running then is in the snapshot's xip list, so its
-- events are found when it commits, whatever their order.
-- The snapshot a progress row starts from: now, with this transaction's
-- own id (if it has one) not yet visible, so that the events it queues are
-- fanned out once it commits (pg_current_snapshot() counts its own
-- transaction as visible when a later one has ended).
-- STABLE: it reads the calling statement's snapshot, not one of its own.
CREATE FUNCTION webhook.snapshot_before_me() RETURNS pg_snapshot
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mine xid8 := pg_current_xact_id_if_assigned();
    now_seen pg_snapshot := pg_current_snapshot();
BEGIN
    IF mine IS NULL OR mine >= pg_snapshot_xmax(now_seen) THEN
        RETURN now_seen;
    END IF;
    RETURN format('%s:%s:%s', least(pg_snapshot_xmin(now_seen), mine), pg_snapshot_xmax(now_seen),
                  (SELECT string_agg(x::text, ',' ORDER BY x)
                     FROM (SELECT pg_snapshot_xip(now_seen) UNION SELECT mine) s (x)))::pg_snapshot;
END
$$;

-- Whether a body matches a webhook's filter (jsonb containment). A json
-- body that is no jsonb (a \u0000 escape, a number out of jsonb's range)
-- matches no filter, rather than stopping every fan-out.
CREATE FUNCTION webhook.body_matches(body json, filter jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN body::jsonb @> filter;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;

-- A per_key webhook's sequence: the value at its ordering key ('' when
-- the body has none, or none that is text, as a \u0000 escape).
CREATE FUNCTION webhook.order_key_of(body json, ordering_key text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN coalesce(body #>> string_to_array(ordering_key, '.'), '');
EXCEPTION WHEN data_exception THEN
    RETURN '';
END
$$;

-- A delivery goes to each webhook subscribed when its event is fanned out
-- (within milliseconds of its commit), whose filter the body matches; an
-- ordered webhook's sequence follows the events' ids (their creation order)
-- within what one slice reads, then the slices' order. The delivery is
-- dated with the event and kept in its log slot.
-- The worker also claims new deliveries here (claim_limit > 0), as the
-- claim would (src/worker/claim.rs): those of enabled, unordered webhooks
-- not left_out (at their limit), up to claim_limit and byte_budget bytes of
-- bodies (the first always), a body over max_body bytes not loaded. They are
-- not inserted: they get their ids, one webhook.in_flight_batches row
-- (batch) lists them under a lease of lease_seconds, and they are returned
-- with their event (its creation time and slot too) and the claim's time; the worker inserts
-- each once, with its outcome. One row per claimed delivery, or one row of
-- NULLs; made is how many deliveries were made (claimed ones included).
-- A batch is the events of the transactions committed between the stored
-- snapshot and a target snapshot (PgQ's batches); it is read in slices of
-- at most 5,000 events and 16 MB of bodies in (txid, id) order, so that a transaction of a
-- million events is fanned out a slice at a time, with the worker's
-- memory and each statement bounded: between slices the row keeps the
-- target (batch) and the last event read (after_txid, after_id); more is
-- true while the batch is not done.
-- One fan-out at a time: the worker's, or a superuser's by hand
-- (SELECT made FROM webhook.fan_out(), alone in its transaction: the
-- snapshot it stores may count the calling transaction as done, and with it
-- the events that transaction queues). enable_seqscan = off: the queue is
-- read through its indexes only, whatever the statistics say (a fresh
-- table's say "empty", and a plan made on them read all of webhook.events
-- at every fan-out while the queue grew); enable_sort = off (as in the
-- worker's session): a slice is read in the index's order, not all of a
-- range read and sorted. jit = off (as in the worker's session): the costs
-- enable_seqscan = off adds put the plan far above jit_above_cost, and a
-- call by hand spent over a second compiling it.
CREATE FUNCTION webhook.fan_out(claim_limit bigint DEFAULT 0, left_out bigint[] DEFAULT '{}',
                                lease_seconds double precision DEFAULT 0, byte_budget bigint DEFAULT 0,
                                max_body bigint DEFAULT 0)
RETURNS TABLE (delivery_id bigint, attempts integer, event_id text, event text[], webhook_id bigint,
               webhook_version double precision, made bigint, more boolean, batch bigint,
               event_created_at timestamptz, event_slot smallint, claimed_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET enable_sort = off
    SET plan_cache_mode = force_generic_plan SET jit = off AS $$
#variable_conflict use_column
DECLARE
    -- A slice the worker claims has as many events as its claim may take
    -- deliveries (at least 100): the rest of the batch waits in
    -- webhook.events for room, rather than be made 'pending' now and
    -- updated by a claim later.
    slice_events constant bigint := CASE WHEN claim_limit > 0 THEN least(greatest(claim_limit, 100), 5000)
                                         ELSE 5000 END;
    slice_bytes constant bigint := 16 * 1024 * 1024;
    progress webhook.fanout;
    done pg_snapshot;
    target pg_snapshot;
BEGIN
    LOCK TABLE webhook.fanout IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO progress FROM webhook.fanout f;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'webhook.fanout has no row: queued events cannot be delivered',
            HINT = 'Insert one: INSERT INTO webhook.fanout (snapshot) VALUES (''1:1:''); the events kept get their deliveries again (a receiver may get some twice, with the same webhook-id).';
    END IF;
    done := progress.snapshot;
    target := coalesce(progress.batch, pg_current_snapshot());
    -- The batch's events are read through events_fanout_idx by ranges of
    -- ids that leave out the transactions running at the target: a large
    -- uncommitted enqueue's entries are never walked.
    RETURN QUERY
    WITH running AS MATERIALIZED (
             SELECT x FROM pg_snapshot_xip(target) x),
         bounds AS (
             SELECT b.x AS above, lead(b.x) OVER (ORDER BY b.x) AS below FROM (
                 SELECT (pg_snapshot_xmax(done)::text::numeric - 1)::text::xid8 AS x
                 UNION SELECT r.x FROM running r WHERE r.x >= pg_snapshot_xmax(done)
                 UNION SELECT pg_snapshot_xmax(target)) b),
         -- The batch's transaction ids as ranges [lo, hi): those between
         -- the transactions running at the target, and each one running at
         -- the stored snapshot that has ended since; none wholly read.
         ranges AS (
             SELECT s.lo, s.hi FROM (
                 SELECT (b.above::text::numeric + 1)::text::xid8 AS lo, b.below AS hi
                   FROM bounds b WHERE b.below IS NOT NULL
                 UNION ALL
                 SELECT x, (x::text::numeric + 1)::text::xid8 FROM pg_snapshot_xip(done) x
                  WHERE x NOT IN (SELECT r.x FROM running r)) s
              WHERE progress.after_txid < s.hi),
         -- The next events of the batch, their keys and sizes only (a body
         -- is not read here: octet_length reads its stored size). A B-tree
         -- scan starts where a row comparison puts it, whatever other lower
         -- bound it has: with the slice's position as a row comparison on
         -- every range, each scan walked the index from the position (the
         -- start of the index between batches, the start of a large
         -- transaction's entries within one) to the range. So a range reads
         -- from the position only when the position is in it, and from its
         -- start otherwise.
         candidates AS (
             SELECT e.* FROM ranges r CROSS JOIN LATERAL (
                    SELECT e.txid, e.id, e.slot, octet_length(e.body::text) AS bytes FROM webhook.events e
                     WHERE e.txid >= r.lo AND e.txid < r.hi
                     ORDER BY e.txid, e.id LIMIT slice_events + 1) e
              WHERE progress.after_txid < r.lo
             UNION ALL
             SELECT e.* FROM ranges r CROSS JOIN LATERAL (
                    SELECT e.txid, e.id, e.slot, octet_length(e.body::text) AS bytes FROM webhook.events e
                     WHERE (e.txid, e.id) > (progress.after_txid, progress.after_id) AND e.txid < r.hi
                     ORDER BY e.txid, e.id LIMIT slice_events + 1) e
              WHERE progress.after_txid >= r.lo),
         next_keys AS MATERIALIZED (
             SELECT k.*, row_number() OVER (ORDER BY k.txid, k.id) AS n,
                    sum(k.bytes) OVER (ORDER BY k.txid, k.id ROWS UNBOUNDED PRECEDING) - k.bytes AS before
               FROM (SELECT c.* FROM candidates c ORDER BY c.txid, c.id LIMIT slice_events + 1) k),
         -- This slice: at most slice_events events and slice_bytes of
         -- bodies (the first event always), each looked up by its key
         -- (LATERAL ... OFFSET 0: never a join the planner could turn
         -- around when the statistics say the events table is empty).
         ev AS MATERIALIZED (
             SELECT e.id, e.topic, e.body, e.tenant_id, e.created_at, e.slot, e.txid, k.bytes
               FROM next_keys k CROSS JOIN LATERAL (
                    SELECT x.* FROM webhook.events x WHERE x.id = k.id AND x.slot = k.slot OFFSET 0) e
              WHERE k.n <= slice_events AND (k.n = 1 OR k.before < slice_bytes)),
         -- Locked FOR KEY SHARE: a concurrent delete_webhook waits, or has
         -- removed the webhook, which is then skipped. Changes of the other
         -- columns do not wait (an admin's open transaction must not stall
         -- the fan-out): a delivery made 'held' as its webhook is enabled is
         -- released by the worker's sync of held deliveries (src/worker/
         -- maintenance.rs), which follows such a fan-out within a second.
         w AS (SELECT wh.id, wh.enabled, wh.ordering, wh.ordering_key, wh.topics, wh.filter, wh.updated_at
                 FROM webhook.webhooks wh
                WHERE wh.deletion_requested_at IS NULL
                  AND wh.topics && ARRAY(SELECT DISTINCT ev.topic FROM ev)
                  FOR KEY SHARE OF wh),
         pairs AS (
             SELECT ev.txid, ev.id AS event, ev.body, ev.created_at, ev.slot, w.id AS webhook, w.enabled,
                    w.ordering, w.ordering_key, CASE WHEN ev.bytes > max_body THEN 0 ELSE ev.bytes END AS loaded,
                    w.enabled AND w.ordering = 'none' AND w.id <> ALL (left_out) AS claimable
               FROM ev JOIN w ON w.topics @> ARRAY[ev.topic]
                             AND (w.filter IS NULL OR webhook.body_matches(ev.body, w.filter))),
         ranked AS (
             SELECT p.*, p.claimable
                    AND row_number() OVER (PARTITION BY p.claimable ORDER BY p.event, p.webhook) <= claim_limit
                    AND sum(p.loaded) OVER (PARTITION BY p.claimable ORDER BY p.event, p.webhook
                                            ROWS UNBOUNDED PRECEDING) - p.loaded < byte_budget AS claimed
               FROM pairs p),
         made AS (
             INSERT INTO webhook.deliveries (event_id, webhook_id, status, order_key, created_at, slot)
             SELECT r.event, r.webhook, CASE WHEN r.enabled THEN 'pending' ELSE 'held' END,
                    CASE r.ordering WHEN 'none' THEN NULL WHEN 'fifo' THEN ''
                         ELSE webhook.order_key_of(r.body, r.ordering_key) END,
                    r.created_at, r.slot
               FROM ranked r
              WHERE NOT r.claimed
              ORDER BY r.event, r.webhook
             RETURNING deliveries.id),
         -- The claimed ones: ids from the deliveries' own sequence, listed
         -- in one in-flight row.
         taken AS MATERIALIZED (
             SELECT nextval('webhook.deliveries_id_seq'::regclass) AS id, r.event, r.webhook, r.slot, r.created_at
               FROM ranked r
              WHERE r.claimed
              ORDER BY r.event, r.webhook),
         flight AS (
             INSERT INTO webhook.in_flight_batches (deliveries, event_ids, webhook_ids, slots, lease_until)
             SELECT array_agg(t.id ORDER BY t.id), array_agg(t.event ORDER BY t.id),
                    array_agg(t.webhook ORDER BY t.id), array_agg(t.slot ORDER BY t.id),
                    now() + make_interval(secs => lease_seconds)
               FROM taken t
             HAVING count(*) > 0
             RETURNING in_flight_batches.id),
         slice_read AS (
             SELECT (SELECT count(*) FROM ev) AS n,
                    (SELECT count(*) FROM next_keys) > (SELECT count(*) FROM ev) AS more,
                    (SELECT ev.txid FROM ev ORDER BY ev.txid DESC, ev.id DESC LIMIT 1) AS txid,
                    (SELECT ev.id FROM ev ORDER BY ev.txid DESC, ev.id DESC LIMIT 1) AS id),
         -- More after this slice: the batch goes on from its last event.
         -- Else the batch is done, and the target becomes the stored snapshot. Found
         -- nothing outside a batch: nothing to store (no write, no WAL); the
         -- next fan-out reads from the same point, where nothing was.
         moved AS (
             UPDATE webhook.fanout f
                SET snapshot = CASE WHEN rd.more THEN f.snapshot ELSE target END,
                    batch = CASE WHEN rd.more THEN target END,
                    after_txid = CASE WHEN rd.more THEN rd.txid ELSE '0' END,
                    after_id = CASE WHEN rd.more THEN rd.id ELSE '' END,
                    updated_at = now()
               FROM slice_read rd
              WHERE rd.n > 0 OR f.batch IS NOT NULL
             RETURNING 1),
         claimed AS (
             SELECT t.id, 1 AS attempts, t.event AS event_id,
                    ARRAY[ev.topic, ev.tenant_id, CASE WHEN ev.bytes <= max_body THEN ev.body::text END,
                          ev.bytes::text] AS event,
                    t.webhook AS webhook_id, extract(epoch FROM w.updated_at)::float8 AS version,
                    t.created_at, t.slot
               FROM taken t JOIN ev ON ev.id = t.event JOIN w ON w.id = t.webhook)
    SELECT c.id, c.attempts, c.event_id, c.event, c.webhook_id, c.version, n.made,
           (SELECT rd.more FROM slice_read rd), (SELECT f.id FROM flight f), c.created_at, c.slot, now()
      FROM (SELECT (SELECT count(*) FROM made) + (SELECT count(*) FROM taken) AS made) n
      LEFT JOIN claimed c ON true;
END
$$;
COMMENT ON FUNCTION webhook.fan_out IS 'Make the deliveries of the events committed since the last fan-out, claiming new ones for the worker up to claim_limit (SELECT made FROM webhook.fan_out() by hand).';

-- pg_restore brings back the dumped progress row after CREATE EXTENSION
-- made one, and after the events (its name sorts after theirs). The
-- restored events' txids and the row's snapshot are the dumped cluster's.
-- The events it had not fanned out are stamped with this transaction's id,
-- the others' ids cleared (they could pass for this cluster's), and the row
-- goes on from this cluster's snapshot, with this transaction not yet
-- visible: once the restore commits (its sequences set), the worker fans
-- those events out like any others. Restore in one transaction
-- (pg_restore --single-transaction): a worker must not fan out events of
-- another cluster before their row arrives.
CREATE FUNCTION webhook.fanout_restore_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mine xid8 := pg_current_xact_id();
BEGIN
    LOCK TABLE webhook.fanout IN SHARE ROW EXCLUSIVE MODE;
    UPDATE webhook.events e
       SET txid = CASE WHEN pg_visible_in_snapshot(e.txid, NEW.snapshot)
                         OR (NEW.batch IS NOT NULL AND pg_visible_in_snapshot(e.txid, NEW.batch)
                             AND (e.txid, e.id) <= (NEW.after_txid, NEW.after_id))
                       THEN NULL ELSE mine END
     WHERE e.txid IS NOT NULL;
    NEW.snapshot := webhook.snapshot_before_me();
    NEW.batch := NULL;
    NEW.after_txid := '0';
    NEW.after_id := '';
    NEW.updated_at := now();
    DELETE FROM webhook.fanout;
    RETURN NEW;
END
$$;
-- The progress row of this installation (before the trigger: not a restore).
INSERT INTO webhook.fanout (snapshot) VALUES (webhook.snapshot_before_me());
CREATE TRIGGER fanout_restore_row BEFORE INSERT ON webhook.fanout
    FOR EACH ROW EXECUTE FUNCTION webhook.fanout_restore_row();

-- A logical replication subscriber fans out its own writes only: events
-- that arrive by replication were fanned out by the publisher (their
-- deliveries arrive as 'replicated'), and the publisher's progress row is
-- not this database's.
CREATE FUNCTION webhook.replicated_event() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- An event the apply worker's own topic triggers queued (ENABLE ALWAYS)
    -- carries the apply transaction's id: it is this database's to fan out.
    IF NEW.txid IS DISTINCT FROM pg_current_xact_id_if_assigned() THEN
        NEW.txid := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_replicated BEFORE INSERT OR UPDATE ON webhook.events
    FOR EACH ROW EXECUTE FUNCTION webhook.replicated_event();
ALTER TABLE webhook.events ENABLE REPLICA TRIGGER events_replicated;
CREATE FUNCTION webhook.skip_replicated_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN NULL;
END
$$;
CREATE TRIGGER fanout_replicated BEFORE INSERT OR UPDATE OR DELETE ON webhook.fanout
    FOR EACH ROW EXECUTE FUNCTION webhook.skip_replicated_row();
ALTER TABLE webhook.fanout ENABLE REPLICA TRIGGER fanout_replicated;
-- A subscriber sends nothing of the publisher's: its deliveries in flight
-- are not its to recover.
CREATE TRIGGER in_flight_batches_replicated BEFORE INSERT OR UPDATE OR DELETE ON webhook.in_flight_batches
    FOR EACH ROW EXECUTE FUNCTION webhook.skip_replicated_row();
ALTER TABLE webhook.in_flight_batches ENABLE REPLICA TRIGGER in_flight_batches_replicated;

-- Retention: the log's slots rotated -----------------------------------------------

-- The rows a rotation keeps from slot `slot`: deliveries not finished (the
-- predicate spelled as the partial indexes' own, so that they find them),
-- their events with all of their deliveries and attempts, and events not
-- fanned out yet (all of those
-- with a transaction id when there is no fan-out row), moved to slot `dest`.
-- A move is an UPDATE of the partition key (a delete and an insert): a
-- snapshot sees each row in one slot or the other, never in both or none.
-- A delivery is always in its event's slot (the fan-out, unbuilt events and
-- Send Test put it there; redeliver and replay update it in place).
-- Returns the rows moved.
CREATE FUNCTION webhook.move_unfinished(slot smallint, dest smallint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    done pg_snapshot := (SELECT f.snapshot FROM webhook.fanout f);
    kept bigint[];
    kept_events text[];
    moved_events text[];
    n bigint;
BEGIN
    WITH d AS (
        UPDATE webhook.deliveries d SET slot = dest
         WHERE d.slot = slot
           AND ((d.status IN ('pending', 'failed') AND d.order_key IS NULL)
                OR (d.order_key IS NOT NULL AND d.status IN ('pending', 'failed', 'delivering'))
                OR d.status = 'delivering' OR d.status = 'unbuilt')
        RETURNING d.id, d.event_id)
    SELECT coalesce(array_agg(d.id), '{}'), coalesce(array_agg(DISTINCT d.event_id), '{}')
      INTO kept, kept_events FROM d;
    WITH e AS (
        UPDATE webhook.events e SET slot = dest
         WHERE e.slot = slot
           AND (e.id = ANY (kept_events)
                OR e.id = ANY (ARRAY(
                    SELECT x.id FROM webhook.events x
                     WHERE x.slot = slot AND x.txid IS NOT NULL
                       AND (done IS NULL OR (x.txid >= pg_snapshot_xmin(done)
                                             AND NOT pg_visible_in_snapshot(x.txid, done))))))
        RETURNING e.id)
    SELECT coalesce(array_agg(e.id), '{}') INTO moved_events FROM e;
    -- The moved events' other deliveries (finished ones; those of a batch
    -- fanned out in part) go along: a delivery stays in its event's slot,
    -- so that one redelivered or replayed later still finds its event.
    WITH siblings AS (
        UPDATE webhook.deliveries d SET slot = dest
         WHERE d.slot = slot AND d.event_id = ANY (moved_events)
        RETURNING d.id)
    SELECT kept || coalesce(array_agg(s.id), '{}') INTO kept FROM siblings s;
    UPDATE webhook.attempts a SET slot = dest WHERE a.slot = slot AND a.delivery_id = ANY (kept);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN cardinality(kept) + cardinality(moved_events) + n;
END
$$;

-- Rotate the log (webhook.log_slots) a step when it is due. The slot after
-- the current one holds rows from its opening until the previous slot's;
-- once that is older than retention (and the current slot has been
-- current for half of it: at most two rotations per retention), its
-- unfinished rows move to the current slot (webhook.move_unfinished) and
-- the transaction is noted (drained_by). At a later call, when no snapshot
-- from before that move remains (pg_dump's included: TRUNCATE is not
-- MVCC-safe, and a snapshot that saw the rows in that slot would see
-- nothing after it), it is locked, anything unfinished since moved again
-- (then it waits once more), and emptied whole (TRUNCATE) and made current.
-- Held deliveries older than retention go with their slot, as pruning
-- dropped them before 0.3.0, unless their event is kept for another of its
-- deliveries. The worker calls it (src/worker/maintenance.rs);
-- a superuser may. Returns what it did: 'not due', 'moved N', 'waiting for
-- snapshots', 'locks busy', 'in flight' (new deliveries of its events are
-- being sent), or 'emptied'; when a rotation is overdue by
-- more than half the retention it warns, naming the sessions that hold it
-- back.
CREATE FUNCTION webhook.rotate_log(retention interval) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '500ms' AS $$
DECLARE
    cur webhook.log_slots;
    nxt webhook.log_slots;
    prev webhook.log_slots;
    moved bigint;
    overdue boolean;
    holders text;
BEGIN
    SELECT * INTO cur FROM webhook.log_slots s WHERE s.is_current FOR UPDATE;
    SELECT * INTO nxt FROM webhook.log_slots s WHERE s.slot = (cur.slot + 1) % 3 FOR UPDATE;
    SELECT * INTO prev FROM webhook.log_slots s WHERE s.slot = (cur.slot + 2) % 3;
    IF cur.slot IS NULL OR nxt.slot IS NULL OR prev.slot IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'webhook.log_slots must hold slots 0, 1 and 2, one of them current',
            HINT = 'Reinstall the extension''s rows: see webhook.log_slots in the extension''s state.sql.';
    END IF;
    IF cur.opened_at > now() - retention / 2 OR prev.opened_at > now() - retention THEN
        -- Not due (again: the retention may have grown since a move).
        UPDATE webhook.log_slots s SET drained_by = NULL, drained_at = NULL
         WHERE s.slot = nxt.slot AND s.drained_by IS NOT NULL;
        RETURN 'not due';
    END IF;
    -- New deliveries in flight whose events are in the slot are inserted in
    -- it when their outcome is recorded (webhook.in_flight_batches): their
    -- events are neither moved (the deliveries would be written apart from
    -- them) nor emptied meanwhile. Only the worker claims them, and it
    -- calls this between its own fan-outs and records: wait.
    IF EXISTS (SELECT FROM webhook.in_flight_batches f WHERE nxt.slot = ANY (f.slots)) THEN
        RETURN 'in flight';
    END IF;
    IF nxt.drained_by IS NULL THEN
        BEGIN
            moved := webhook.move_unfinished(nxt.slot, cur.slot);
        EXCEPTION WHEN lock_not_available THEN
            -- A row to move is locked (an admin's open transaction): the
            -- next maintenance tries again.
            RETURN 'locks busy';
        END;
        UPDATE webhook.log_slots s SET drained_by = pg_current_xact_id(), drained_at = NULL
         WHERE s.slot = nxt.slot;
        RETURN format('moved %s', moved);
    END IF;
    IF nxt.drained_at IS NULL THEN
        -- The move has committed (this is a later transaction): a
        -- transaction that begins from now on sees it.
        UPDATE webhook.log_slots s SET drained_at = clock_timestamp() WHERE s.slot = nxt.slot;
        RETURN 'waiting for snapshots';
    END IF;
    overdue := prev.opened_at < now() - retention * 1.5;
    -- A session of this database whose snapshot may predate the move: its
    -- xmin is not newer, and its transaction began before drained_at, a
    -- time after the move committed (one that began later sees the moved
    -- rows, whatever older transaction holds everyone's xmin back); a
    -- logical replication slot's initial copy too. Autovacuum reads nothing
    -- a move could hide.
    SELECT string_agg(DISTINCT a.pid::text, ', ') INTO holders
      FROM pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
       AND a.backend_type <> 'autovacuum worker'
       AND a.backend_xmin IS NOT NULL AND age(a.backend_xmin) >= age(xid(nxt.drained_by))
       AND a.xact_start < nxt.drained_at;
    IF holders IS NOT NULL
       OR EXISTS (SELECT FROM pg_replication_slots r
                   WHERE r.database = current_database()
                     AND r.xmin IS NOT NULL AND age(r.xmin) >= age(xid(nxt.drained_by))) THEN
        IF overdue THEN
            RAISE WARNING USING
                MESSAGE = format('webhook_emitter: the delivery log''s oldest slot is overdue for emptying: snapshots older than its last move are still held (sessions %s, or a replication slot)',
                                 coalesce(holders, 'none')),
                HINT = 'End those transactions (idle_in_transaction_session_timeout bounds them); until then the log keeps growing.';
        END IF;
        RETURN 'waiting for snapshots';
    END IF;
    BEGIN
        EXECUTE format('LOCK TABLE %s, %s, %s IN ACCESS EXCLUSIVE MODE',
                       nxt.events, nxt.deliveries, nxt.attempts);
    EXCEPTION WHEN lock_not_available THEN
        IF overdue THEN
            SELECT string_agg(DISTINCT l.pid::text, ', ') INTO holders
              FROM pg_locks l
             WHERE l.relation IN (nxt.events, nxt.deliveries, nxt.attempts) AND l.granted
               AND l.pid <> pg_backend_pid();
            RAISE WARNING USING
                MESSAGE = format('webhook_emitter: the delivery log''s oldest slot is overdue for emptying: sessions %s hold locks on its tables',
                                 coalesce(holders, 'none')),
                HINT = 'End those transactions (idle_in_transaction_session_timeout bounds them); until then the log keeps growing.';
        END IF;
        RETURN 'locks busy';
    END;
    -- Anything unfinished since the move (a delivery revived, an event of a
    -- writer that still had the slot as current) moves too, and waits again.
    moved := webhook.move_unfinished(nxt.slot, cur.slot);
    IF moved > 0 THEN
        UPDATE webhook.log_slots s SET drained_by = pg_current_xact_id(), drained_at = NULL
         WHERE s.slot = nxt.slot;
        RETURN format('moved %s', moved);
    END IF;
    EXECUTE format('TRUNCATE %s, %s, %s', nxt.events, nxt.deliveries, nxt.attempts);
    UPDATE webhook.log_slots s SET is_current = false WHERE s.slot = cur.slot;
    UPDATE webhook.log_slots s SET is_current = true, opened_at = now(), drained_by = NULL, drained_at = NULL
     WHERE s.slot = nxt.slot;
    RETURN 'emptied';
END
$$;
REVOKE EXECUTE ON FUNCTION webhook.rotate_log(interval), webhook.move_unfinished(smallint, smallint) FROM PUBLIC;
COMMENT ON FUNCTION webhook.rotate_log IS 'Empty the delivery log''s oldest slot, in two steps, when all of it is older than retention, keeping what is unfinished (the worker runs it); returns what it did.';

-- Attempts have no foreign key to their delivery (they are partitioned by
-- slot, like it); a delivery deleted (its webhook's, held ones discarded,
-- by hand) takes its attempts along. Statement-level: a move between slots
-- (an UPDATE) fires no DELETE statement trigger, and TRUNCATE none at all.
CREATE FUNCTION webhook.delete_attempts() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM webhook.attempts a WHERE a.delivery_id IN (SELECT g.id FROM gone g);
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_delete_attempts AFTER DELETE ON webhook.deliveries
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION webhook.delete_attempts();
REVOKE EXECUTE ON FUNCTION webhook.delete_attempts() FROM PUBLIC;

-- A logical replication subscriber rotates its own log: the publisher's
-- slots are not its.
CREATE TRIGGER log_slots_replicated BEFORE INSERT OR UPDATE OR DELETE ON webhook.log_slots
    FOR EACH ROW EXECUTE FUNCTION webhook.skip_replicated_row();
ALTER TABLE webhook.log_slots ENABLE REPLICA TRIGGER log_slots_replicated;

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
-- A rotation changes the slot the write path queues into.
CREATE TRIGGER subscriptions_changed
    AFTER UPDATE ON webhook.log_slots
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();
-- Replicated changes (a logical replication subscriber) count too.
ALTER TABLE webhook.webhooks ENABLE ALWAYS TRIGGER subscriptions_changed;
ALTER TABLE webhook.settings ENABLE ALWAYS TRIGGER subscriptions_changed;
ALTER TABLE webhook.topics ENABLE ALWAYS TRIGGER subscriptions_changed;

-- webhook.enqueue(topic, body) (Rust, src/write/enqueue.rs) queues an event
-- of a topic some webhook subscribes to: one row, fanned out to the
-- webhooks by the worker (webhook.fan_out); the generated topic triggers
-- call it. It caches
-- the switch, the tenant id and each topic's envelope under the same
-- generation, so changes to those (and to the topic catalog) bump it too.
-- SECURITY DEFINER with a fixed search_path: the generated functions call
-- it as the topic's definer (a webhook_admin member, who may not write the
-- queue tables); EXECUTE is webhook_admin's only.
COMMENT ON FUNCTION webhook.enqueue IS 'Queue an event (called by the generated topic triggers); returns its id, or NULL when nobody subscribes.';
