-- webhook_emitter 0.2.0 -> 0.3.0. A delta: only what changed (UPGRADING.md).
-- Delegated roles (docs/security.md): topic code runs as its definer
-- through webhook.emit_topic, generated objects are the extension owner's,
-- the topic catalog changes only through the definition functions, the
-- queue only through SECURITY DEFINER API functions; names are unique
-- without being a key; the order key is not readable by PUBLIC. Ends by
-- regenerating every topic's triggers and function (the repair).
\echo Use "ALTER EXTENSION webhook_emitter UPDATE" to load this file. \quit

-- State ----------------------------------------------------------------------

-- In 0.2.0 webhook_admin could write webhook.topics directly, so a row is
-- trusted only as far as what it cannot forge vouches for it. Taken first,
-- with 0.2.0's generator: is its function an extension member (made by
-- CREATE EXTENSION), who owns it, is it still exactly what the row
-- generates, and does every trigger the row names exist on its table,
-- calling it, on the columns it names.
CREATE TABLE webhook.upgrade_0_3_0_topics AS
SELECT t.topic, p.proowner AS function_owner,
       EXISTS (SELECT FROM pg_catalog.pg_depend x WHERE x.classid = 'pg_proc'::regclass
                  AND x.objid = p.oid AND x.deptype = 'e') AS member,
       coalesce(p.prosrc = webhook.topic_trigger_source(t), false)
       AND NOT EXISTS (
           SELECT FROM unnest(t.operations) op
            WHERE NOT EXISTS (
                SELECT FROM pg_catalog.pg_trigger g
                 WHERE g.tgrelid = to_regclass(t.source_table)
                   AND g.tgname = webhook.topic_trigger_name(t.topic, op) AND g.tgfoid = p.oid
                   AND (op <> 'update' OR t.columns IS NULL
                        OR (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid = g.tgrelid AND a.attnum = ANY (g.tgattr))
                           = (SELECT array_agg(c ORDER BY c) FROM unnest(t.columns) c)))) AS verified
  FROM webhook.topics t
  LEFT JOIN pg_catalog.pg_proc p ON p.pronamespace = 'webhook_triggers'::regnamespace
        AND p.proname = t.trigger_function AND p.pronargs = 0;

-- The documented topics as shipped (0.2.0 defines them as 0.3.0 does).
CREATE TABLE webhook.upgrade_0_3_0_documented
    (topic text, source_table text, builder text, operations text[], columns text[], condition text,
     timing text, key_column text, trigger_function text);
INSERT INTO webhook.upgrade_0_3_0_documented VALUES
    ('account.created', 'lms.users', 'lms.account_created_body(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'account.created 5853c71d'),
    ('announcement.created', 'lms.announcements', 'lms.announcement_body(bigint)', '{insert,update}', '{published_at}', 'NEW.published_at IS NOT NULL', 'commit', 'id', 'announcement.created c13aa68a'),
    ('assignment.evaluated', 'lms.assignment_submissions', 'lms.assignment_evaluated_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''evaluated''', 'commit', 'id', 'assignment.evaluated 671ca695'),
    ('assignment.rejected', 'lms.assignment_submissions', 'lms.assignment_evaluated_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''rejected''', 'commit', 'id', 'assignment.rejected ed256f9e'),
    ('assignment.submitted', 'lms.assignment_submissions', 'lms.assignment_submitted_body(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'assignment.submitted 3d8b9507'),
    ('bundle.created', 'lms.bundles', 'lms.bundle_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'bundle.created 13c8f96c'),
    ('bundle.deleted', 'lms.bundles', 'lms.bundle_payload(bigint)', '{delete}', NULL, NULL, 'before_delete', 'id', 'bundle.deleted 7b381cd4'),
    ('bundle.updated', 'lms.bundles', 'lms.bundle_payload(bigint)', '{update}', NULL, NULL, 'commit', 'id', 'bundle.updated a1838743'),
    ('course.completed', 'lms.course_completions', 'lms.course_completion_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'course.completed 4bcfcdc7'),
    ('course.created', 'lms.courses', 'lms.course_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'course.created 3e75a01f'),
    ('course.deleted', 'lms.courses', 'lms.course_payload(bigint)', '{delete}', NULL, NULL, 'before_delete', 'id', 'course.deleted 9df070e9'),
    ('course.enrolled', 'lms.course_enrollments', 'lms.course_enrolled_body(bigint[])', '{insert}', NULL, NULL, 'statement', 'id', 'course.enrolled 689ff958'),
    ('course.enrollment', 'lms.course_enrollments', 'lms.course_enrollment_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'course.enrollment 813b989a'),
    ('course.updated', 'lms.courses', 'lms.course_payload(bigint)', '{update}', NULL, NULL, 'commit', 'id', 'course.updated 150d1dc3'),
    ('discussion.submitted', 'lms.discussion_posts', 'lms.discussion_post_body(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'discussion.submitted e0179cea'),
    ('group.created', 'lms.groups', 'lms.group_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'group.created a0878ec3'),
    ('live_class.created', 'lms.live_classes', 'lms.live_class_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'live_class.created 9b158e50'),
    ('live_class.deleted', 'lms.live_classes', 'lms.live_class_payload(bigint)', '{delete}', NULL, NULL, 'before_delete', 'id', 'live_class.deleted 65528dac'),
    ('live_class.enrollment', 'lms.live_class_enrollments', 'lms.live_class_enrollment_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'live_class.enrollment 2930b5d3'),
    ('live_class.updated', 'lms.live_classes', 'lms.live_class_payload(bigint)', '{update}', NULL, NULL, 'commit', 'id', 'live_class.updated 2f802373'),
    ('order.failed', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''FAILED''', 'commit', 'id', 'order.failed 6fb507d7'),
    ('order.placed', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''COMPLETED''', 'commit', 'id', 'order.placed 51f5972e'),
    ('order.refunded', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''REFUNDED''', 'commit', 'id', 'order.refunded 57a2e050'),
    ('payment.pending', 'lms.orders', 'lms.order_body(bigint)', '{insert,update}', '{status}', 'NEW.status = ''PENDING''', 'commit', 'id', 'payment.pending 4aea04ef'),
    ('product.created', 'lms.products', 'lms.product_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'product.created 9994686a'),
    ('product.deleted', 'lms.products', 'lms.product_payload(bigint)', '{delete}', NULL, NULL, 'before_delete', 'id', 'product.deleted a109b5a7'),
    ('quiz.submitted', 'lms.quiz_submissions', 'lms.quiz_submission_body(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'quiz.submitted e7cbe0a0'),
    ('sale.new', 'lms.orders', 'lms.sale_payload(bigint)', '{insert,update}', '{status}', 'NEW.status = ''COMPLETED''', 'commit', 'id', 'sale.new 47fc9493'),
    ('test.completed', 'lms.test_attempts', 'lms.test_completed_payload(bigint)', '{insert,update}', '{completed_at}', 'NEW.completed_at IS NOT NULL', 'commit', 'id', 'test.completed 896bcaac'),
    ('test.created', 'lms.tests', 'lms.test_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'test.created 453e9867'),
    ('test.deleted', 'lms.tests', 'lms.test_payload(bigint)', '{delete}', NULL, NULL, 'before_delete', 'id', 'test.deleted 01464f0b'),
    ('test.enrollment', 'lms.test_enrollments', 'lms.test_enrollment_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'test.enrollment 67761e3b'),
    ('test.updated', 'lms.tests', 'lms.test_payload(bigint)', '{update}', NULL, NULL, 'commit', 'id', 'test.updated 9c6ad74c'),
    ('user.created', 'lms.users', 'lms.user_created_payload(bigint)', '{insert}', NULL, NULL, 'commit', 'id', 'user.created e4ccad9e'),
    ('user.deleted', 'lms.users', 'lms.user_payload(bigint)', '{delete}', NULL, NULL, 'before_delete', 'id', 'user.deleted b36b606b'),
    ('user.updated', 'lms.users', 'lms.user_payload(bigint)', '{update}', NULL, NULL, 'commit', 'id', 'user.updated 7ce3bd62');

-- A row naming an extension member but not a documented topic was forged
-- (only CREATE EXTENSION makes members): it goes, with a warning.
DO $forged$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT u.topic FROM webhook.upgrade_0_3_0_topics u
              WHERE u.member AND u.topic NOT IN (SELECT d.topic FROM webhook.upgrade_0_3_0_documented d) LOOP
        RAISE WARNING 'topic %: its row names a function of the extension but is not a documented topic; it is removed', t.topic;
        DELETE FROM webhook.topics c WHERE c.topic = t.topic;
    END LOOP;
END
$forged$;

-- Whose rights a topic's code runs with. A documented topic's: the
-- extension owner, its definition rebuilt as shipped. Another's: the owner
-- of its 0.2.0 function (SECURITY DEFINER) when the row is verified, and a
-- condition, which 0.2.0 kept only in the WHEN clause for other timings,
-- is in the function too (commit topics). Otherwise webhook_admin, which
-- can run nothing it could not already: the repair warns, and the topic
-- should be redefined by the role it is meant to run as.
ALTER TABLE webhook.topics ADD COLUMN definer regrole;
UPDATE webhook.topics t
   SET builtin = true,
       definer = (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'webhook_emitter')::regrole,
       source_table = d.source_table, builder = d.builder::regprocedure, operations = d.operations,
       columns = d.columns, condition = d.condition, timing = d.timing, key_column = d.key_column,
       exclude_columns = NULL, trigger_function = d.trigger_function
  FROM webhook.upgrade_0_3_0_topics u, webhook.upgrade_0_3_0_documented d
 WHERE u.topic = t.topic AND d.topic = t.topic AND u.member;
UPDATE webhook.topics t
   SET builtin = false,
       definer = CASE WHEN u.verified AND (t.condition IS NULL OR t.timing = 'commit') THEN u.function_owner
                      ELSE 'webhook_admin'::regrole::oid END::regrole
  FROM webhook.upgrade_0_3_0_topics u
 WHERE u.topic = t.topic AND NOT u.member;
ALTER TABLE webhook.topics ALTER COLUMN definer SET NOT NULL;

-- delete_webhook no longer waits for writers: it may leave the removal
-- to the worker. Names are unique among the others, and no longer a key.
ALTER TABLE webhook.webhooks ADD COLUMN deletion_requested_at timestamptz;
ALTER TABLE webhook.webhooks DROP CONSTRAINT webhooks_name_key;
CREATE UNIQUE INDEX webhooks_name_key ON webhook.webhooks (name) WHERE deletion_requested_at IS NULL;

-- Issue 28: outcome callbacks. The function, the role it runs as (the one
-- that set it), whether failed attempts are handed over too; the outcomes
-- waiting for it.
ALTER TABLE webhook.webhooks ADD COLUMN outcome_callback regprocedure,
    ADD COLUMN outcome_callback_owner regrole,
    ADD COLUMN callback_on_failure boolean NOT NULL DEFAULT false;
-- Outcomes waiting for their webhook's callback (src/worker/callbacks.rs):
-- written with the delivery's final status, in the same transaction; the
-- callback's effects and its row's 'done' commit together, so an outcome
-- is handed over exactly once. Retried on the retry schedule, then 'dead'.
CREATE TABLE webhook.outcomes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint  NOT NULL,  -- no FK: the delivery log may be pruned first
    webhook_id  bigint  NOT NULL REFERENCES webhook.webhooks (id) ON DELETE CASCADE,
    argument    jsonb   NOT NULL,  -- what the callback is called with
    status      text    NOT NULL DEFAULT 'pending'
                CONSTRAINT outcomes_status_check CHECK (status IN ('pending', 'failed', 'done', 'dead')),
    tries       integer NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX outcomes_due_idx ON webhook.outcomes (next_try_at) WHERE status IN ('pending', 'failed');
CREATE INDEX outcomes_finished_idx ON webhook.outcomes (created_at) WHERE status IN ('done', 'dead');
COMMENT ON TABLE webhook.outcomes IS 'Delivery outcomes handed to webhooks'' outcome callbacks: pending, failed (retried), done, dead.';
SELECT pg_catalog.pg_extension_config_dump('webhook.outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.outcomes_id_seq', '');

-- Issue 26: builders that fail, logical replication ----------------------------
-- What a builder that raises does to the write (default: queue the event
-- unbuilt); events kept with the error and the key; deliveries 'unbuilt'
-- and 'replicated' (a copy a logical replication subscriber never sends).
ALTER TABLE webhook.topics ADD COLUMN on_builder_error text NOT NULL DEFAULT 'queue'
    CONSTRAINT topics_on_builder_error_check CHECK (on_builder_error IN ('queue', 'refuse'));
-- (The log tables' new columns and statuses: see "the log in slots" below.)
-- The document puts tenant_id before domain_id for these two topics.
UPDATE webhook.topics
   SET sample_body = replace(sample_body::text, E'"domain_id": "acme-academy",\n  "tenant_id": "acme-academy",',
                             E'"tenant_id": "acme-academy",\n  "domain_id": "acme-academy",')::json
 WHERE topic IN ('user.updated', 'user.deleted') AND builtin;

-- Issue 28: the event catalog ---------------------------------------------------
-- A topic's JSON Schema (draft 2020-12): inferred from its sample body,
-- tightened by hand (schema_overrides), kept as a generated column.
CREATE FUNCTION webhook.infer_event_schema(
    "topic" TEXT,
    "display_name" TEXT,
    "description" TEXT,
    "sample_body" json,
    "schema_overrides" jsonb
) RETURNS jsonb
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'infer_event_schema_wrapper';
ALTER TABLE webhook.topics ADD COLUMN schema_overrides jsonb,
    ADD COLUMN event_schema jsonb GENERATED ALWAYS AS
        (webhook.infer_event_schema(topic, display_name, description, sample_body, schema_overrides)) STORED;

-- The fan-out's progress (webhook.fan_out): every event whose txid is
-- visible in this snapshot has its deliveries. Exactly one row.
CREATE TABLE webhook.fanout (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    snapshot   pg_snapshot NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- A batch read in slices: its target snapshot, and the last event read
    -- (txid, id); NULL, '0' and '' between batches.
    batch      pg_snapshot,
    after_txid xid8 NOT NULL DEFAULT '0',
    after_id   text NOT NULL DEFAULT ''
);
COMMENT ON TABLE webhook.fanout IS 'The worker''s fan-out progress: events whose transaction is visible in snapshot have their deliveries (webhook.fan_out).';
SELECT pg_catalog.pg_extension_config_dump('webhook.fanout', '');

-- New deliveries the worker claims in a fan-out are written once, at their
-- end, with their outcome (src/worker/record.rs), not inserted 'delivering'
-- and then updated through every index of webhook.deliveries: meanwhile
-- one row per claimed slice says which they are, for a crash or a lost
-- request to find (the worker then inserts each one not recorded as
-- interrupted: failed, due again). The worker deletes it once all of its
-- deliveries are recorded. Read through webhook.in_flight.
CREATE TABLE webhook.in_flight_batches (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deliveries  bigint[]   NOT NULL,  -- their ids (from deliveries_id_seq)
    event_ids   text[]     NOT NULL,
    webhook_ids bigint[]   NOT NULL,
    slots       smallint[] NOT NULL,  -- their events' log slots (rotation waits for them)
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL,
    CONSTRAINT in_flight_batches_arrays_check
        CHECK (cardinality(deliveries) = cardinality(event_ids) AND cardinality(deliveries) = cardinality(webhook_ids)
               AND cardinality(deliveries) = cardinality(slots))
);
COMMENT ON TABLE webhook.in_flight_batches IS 'New deliveries claimed by the worker''s fan-out whose outcome is not recorded yet, one row per claimed slice (see webhook.in_flight).';
SELECT pg_catalog.pg_extension_config_dump('webhook.in_flight_batches', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.in_flight_batches_id_seq', '');

-- Issue 29: the log in slots ----------------------------------------------------
-- The log tables become partitioned by log slot (rotated, never pruned row
-- by row), with 0.3.0's columns: an event's builder error and its writing
-- transaction (the fan-out), an attempt's webhook, the slot. The 0.2.0
-- tables are renamed, their rows copied into slot 0 (attempts get their
-- delivery's webhook; events queued before have their deliveries: txid
-- NULL), and dropped at the end of this script, once every view and
-- function reading them has been made again on the new ones.
ALTER TABLE webhook.events RENAME TO events_v020;
ALTER TABLE webhook.deliveries RENAME TO deliveries_v020;
ALTER TABLE webhook.attempts RENAME TO attempts_v020;
ALTER TABLE webhook.events_v020 RENAME CONSTRAINT events_pkey TO events_v020_pkey;
ALTER TABLE webhook.deliveries_v020 RENAME CONSTRAINT deliveries_pkey TO deliveries_v020_pkey;
ALTER TABLE webhook.attempts_v020 RENAME CONSTRAINT attempts_pkey TO attempts_v020_pkey;
ALTER TABLE webhook.deliveries_v020 RENAME CONSTRAINT deliveries_webhook_id_fkey TO deliveries_v020_webhook_id_fkey;
-- PostgreSQL 18 names NOT NULL constraints too: the old names go, so that
-- the new tables get the names a fresh install gives them.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT x.conrelid::regclass AS rel, x.conname
               FROM pg_catalog.pg_constraint x
              WHERE x.contype = 'n'
                AND x.conrelid IN ('webhook.events_v020'::regclass, 'webhook.deliveries_v020'::regclass,
                                   'webhook.attempts_v020'::regclass) LOOP
        EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', c.rel, c.conname, c.conname || '_v020');
    END LOOP;
END
$$;
DROP INDEX webhook.deliveries_due_idx, webhook.deliveries_sequence_idx, webhook.deliveries_webhook_idx,
    webhook.deliveries_event_idx, webhook.deliveries_finished_idx, webhook.deliveries_held_idx,
    webhook.deliveries_leased_idx, webhook.attempts_delivery_idx;
ALTER SEQUENCE webhook.deliveries_id_seq RENAME TO deliveries_v020_id_seq;
ALTER SEQUENCE webhook.attempts_id_seq RENAME TO attempts_v020_id_seq;

-- The log (events, deliveries, attempts) is kept in three slots, each a
-- partition of every log table, rotated the way PgQ rotates its tables:
-- new rows go to the current slot; when the slot after it holds nothing
-- newer than webhook.retention, the worker moves what is still unfinished
-- out of it (pending, failed, in flight, unbuilt deliveries, with their
-- events and attempts; events not fanned out yet), then, once no snapshot
-- from before the move remains, empties it with one TRUNCATE and makes it
-- current (webhook.rotate_log). Retention costs no DELETE per row; rows
-- are kept between retention and about 1.5 times it.
CREATE TABLE webhook.log_slots (
    slot       smallint PRIMARY KEY CHECK (slot BETWEEN 0 AND 2),
    is_current boolean  NOT NULL DEFAULT false,
    opened_at  timestamptz NOT NULL DEFAULT now(),  -- when it last became current
    -- The transaction that moved the slot's unfinished rows out (the first
    -- step of emptying it); it is emptied once no snapshot older than that
    -- remains, so that no reader (pg_dump) can miss the moved rows.
    drained_by xid8,
    drained_at timestamptz,
    -- Its partitions (regclass: names from the catalog, quoted as needed).
    events     regclass NOT NULL,
    deliveries regclass NOT NULL,
    attempts   regclass NOT NULL
);
CREATE UNIQUE INDEX log_slots_current_key ON webhook.log_slots (is_current) WHERE is_current;
COMMENT ON TABLE webhook.log_slots IS 'The delivery log''s three slots (partitions of events, deliveries and attempts) and which one new rows go to; rotated by the worker (webhook.rotate_log).';

-- The slot new rows go to (the log tables' default; the write path and the
-- worker pass it themselves).
CREATE FUNCTION webhook.log_slot() RETURNS smallint
LANGUAGE sql STABLE
RETURN (SELECT s.slot FROM webhook.log_slots s WHERE s.is_current);

CREATE TABLE webhook.events (
    id         text NOT NULL,               -- ULID; the webhook-id header and envelope id
    topic      text NOT NULL,
    body       json NOT NULL,               -- json, not jsonb: key order as built
    tenant_id  text NOT NULL,
    is_test    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- 0.3.0: an event whose builder raised (body 'null'): the error and the
    -- row's key (as text), until webhook.rebuild_events builds it.
    build_error text,
    build_key   text,
    -- 0.3.0: the writing transaction's id, for the worker's fan-out
    -- (webhook.fan_out: deliveries are made from the events committed since
    -- its last snapshot); NULL for events not fanned out that way (queued
    -- before 0.3.0, Send Test, unbuilt, replicated, restored from another
    -- cluster once fanned out).
    txid        xid8,
    -- 0.3.0: the log slot (webhook.log_slots) it is kept in.
    slot        smallint NOT NULL DEFAULT webhook.log_slot(),
    PRIMARY KEY (id, slot)
) PARTITION BY LIST (slot);
-- No index on created_at: ids are ULIDs, ordered by creation time, so
-- pruning finds old events through the primary key.
COMMENT ON TABLE webhook.events IS 'Queued events; the body is the document delivered (before per-webhook rendering).';

CREATE TABLE webhook.deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY,
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
    -- 0.3.0: the log slot, its event's (webhook.log_slots).
    slot             smallint NOT NULL DEFAULT webhook.log_slot(),
    PRIMARY KEY (id, slot),
    CONSTRAINT deliveries_status_check
        CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'dead', 'held', 'unbuilt', 'replicated'))
) PARTITION BY LIST (slot);
COMMENT ON TABLE webhook.deliveries IS 'One row per event and webhook: status pending/delivering/delivered/failed/dead, held while the webhook is disabled, unbuilt while its builder fails (webhook.rebuild_events), replicated when it came by logical replication (never sent here).';

CREATE TABLE webhook.attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    -- No foreign key (0.3.0): attempts go with their delivery when its slot
    -- is rotated, and are deleted with it (webhook.delete_attempts).
    delivery_id      bigint NOT NULL,
    attempt          integer NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      double precision NOT NULL,
    status_code      integer,
    response_headers jsonb,
    response_excerpt text,
    error            text,
    -- 0.3.0: the webhook, so that its failures are found without joining
    -- the deliveries (no foreign key: it goes with its delivery).
    webhook_id       bigint,
    -- 0.3.0: the log slot, its delivery's (webhook.log_slots).
    slot             smallint NOT NULL DEFAULT webhook.log_slot(),
    PRIMARY KEY (id, slot)
) PARTITION BY LIST (slot);
COMMENT ON TABLE webhook.attempts IS 'Every HTTP attempt: timing, status code, response excerpt, error.';

-- The slots' partitions (their data is what pg_dump keeps). The keys are
-- (id, slot), as a key over a partitioned table must be; each deliveries
-- partition also has one on id alone, which tells the planner that a
-- lookup of a delivery by id finds one row whatever the statistics say:
-- without it, the worker's recording statement (which has the ids, not
-- the slots) joined its batch to the deliveries by hashing whole
-- partitions. Ids are unique across slots all the same: they come from one
-- identity (ULIDs for events), and a row changes slot only by moving.
CREATE TABLE webhook.events_0 PARTITION OF webhook.events FOR VALUES IN (0);
CREATE TABLE webhook.events_1 PARTITION OF webhook.events FOR VALUES IN (1);
CREATE TABLE webhook.events_2 PARTITION OF webhook.events FOR VALUES IN (2);
CREATE TABLE webhook.deliveries_0 PARTITION OF webhook.deliveries (UNIQUE (id)) FOR VALUES IN (0);
CREATE TABLE webhook.deliveries_1 PARTITION OF webhook.deliveries (UNIQUE (id)) FOR VALUES IN (1);
CREATE TABLE webhook.deliveries_2 PARTITION OF webhook.deliveries (UNIQUE (id)) FOR VALUES IN (2);
CREATE TABLE webhook.attempts_0 PARTITION OF webhook.attempts FOR VALUES IN (0);
CREATE TABLE webhook.attempts_1 PARTITION OF webhook.attempts FOR VALUES IN (1);
CREATE TABLE webhook.attempts_2 PARTITION OF webhook.attempts FOR VALUES IN (2);
-- A fresh slot is as old as the installation: no slot is emptied before
-- it has been current for webhook.retention (a restore keeps its log that long).
INSERT INTO webhook.log_slots (slot, is_current, events, deliveries, attempts)
SELECT n, n = 0, format('webhook.events_%s', n)::regclass, format('webhook.deliveries_%s', n)::regclass,
       format('webhook.attempts_%s', n)::regclass
  FROM generate_series(0, 2) n;
SELECT pg_catalog.pg_extension_config_dump('webhook.events_0', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.events_1', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.events_2', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries_0', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries_1', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries_2', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts_0', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts_1', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts_2', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.deliveries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.attempts_id_seq', '');

INSERT INTO webhook.events (id, topic, body, tenant_id, is_test, created_at, slot)
SELECT id, topic, body, tenant_id, is_test, created_at, 0 FROM webhook.events_v020;
INSERT INTO webhook.deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until,
                                last_attempt_at, last_status_code, last_error, delivered_at, is_test,
                                created_at, order_key, slot)
OVERRIDING SYSTEM VALUE
SELECT id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until, last_attempt_at,
       last_status_code, last_error, delivered_at, is_test, created_at, order_key, 0
  FROM webhook.deliveries_v020;
INSERT INTO webhook.attempts (id, delivery_id, attempt, started_at, duration_ms, status_code,
                              response_headers, response_excerpt, error, webhook_id, slot)
OVERRIDING SYSTEM VALUE
SELECT a.id, a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.response_headers,
       a.response_excerpt, a.error, d.webhook_id, 0
  FROM webhook.attempts_v020 a LEFT JOIN webhook.deliveries_v020 d ON d.id = a.delivery_id;
-- The indexes, built once the rows are in.
CREATE INDEX events_unbuilt_idx ON webhook.events (topic) WHERE build_error IS NOT NULL;
-- The fan-out finds new events by transaction id: one small index, the
-- only one besides the primary key on the write path's table.
CREATE INDEX events_fanout_idx ON webhook.events (txid, id) WHERE txid IS NOT NULL;
-- Unordered deliveries are claimed by due time; ordered ones only at the
-- head of their sequence, found through deliveries_sequence_idx, so a long
-- blocked sequence is never scanned by the claim.
-- webhook_id included: webhook_health counts each webhook's backlog from
-- this index alone (an index-only scan once vacuum has passed).
CREATE INDEX deliveries_due_idx ON webhook.deliveries (next_attempt_at) INCLUDE (webhook_id)
    WHERE status IN ('pending', 'failed') AND order_key IS NULL;
CREATE INDEX deliveries_sequence_idx ON webhook.deliveries (webhook_id, order_key, id)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed', 'delivering', 'held');
CREATE INDEX deliveries_webhook_idx ON webhook.deliveries (webhook_id, created_at);
CREATE INDEX deliveries_event_idx ON webhook.deliveries (event_id);
CREATE INDEX deliveries_held_idx ON webhook.deliveries (webhook_id, created_at)
    WHERE status = 'held';
CREATE INDEX deliveries_leased_idx ON webhook.deliveries (lease_until)
    WHERE status = 'delivering';
CREATE INDEX deliveries_unbuilt_idx ON webhook.deliveries (webhook_id) WHERE status = 'unbuilt';
CREATE INDEX attempts_delivery_idx ON webhook.attempts (delivery_id);
-- One webhook's failures over a time range; only failed attempts pay for it.
CREATE INDEX attempts_failures_idx ON webhook.attempts (webhook_id, started_at)
    WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299;
SELECT setval('webhook.deliveries_id_seq', s.last_value, s.is_called) FROM webhook.deliveries_v020_id_seq s;
SELECT setval('webhook.attempts_id_seq', s.last_value, s.is_called) FROM webhook.attempts_v020_id_seq s;
GRANT SELECT (id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until,
              last_attempt_at, last_status_code, last_error, delivered_at, is_test, created_at)
    ON webhook.deliveries TO PUBLIC;
GRANT SELECT (id, delivery_id, attempt, started_at, duration_ms, status_code, error, webhook_id)
    ON webhook.attempts TO PUBLIC;
GRANT SELECT ON webhook.events, webhook.deliveries, webhook.attempts TO webhook_admin;
GRANT SELECT ON webhook.log_slots TO PUBLIC;
REVOKE ALL ON webhook.events_0, webhook.events_1, webhook.events_2, webhook.deliveries_0, webhook.deliveries_1,
    webhook.deliveries_2, webhook.attempts_0, webhook.attempts_1, webhook.attempts_2 FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook.log_slot() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.log_slot() TO webhook_admin;

-- Code -----------------------------------------------------------------------

-- Only the extension owner runs the topic's code as its definer (Rust).
CREATE FUNCTION webhook.emit_topic() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'emit_topic';
COMMENT ON FUNCTION webhook.emit_topic() IS 'Runs a topic''s generated trigger function as the topic''s definer (the triggers of webhook.topics call it).';

CREATE FUNCTION webhook.change_topic(
	"change" TEXT,
	"definition" json,
	"replace" bool
) RETURNS json
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'change_topic_wrapper';

CREATE FUNCTION webhook.call_builder(topic text, key anyelement) RETURNS json
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'call_builder_wrapper';

-- Whether a topic's condition goes into its triggers' WHEN clause: only a
-- documented topic's (the extension's own text) or a superuser's.
-- PostgreSQL evaluates WHEN as whoever writes the table, and parses it
-- while the extension owner creates the trigger: any other condition is
-- checked inside the generated function, which runs as the definer
-- (webhook.emit_topic). For a commit topic that means at commit only, on
-- the row as committed.
CREATE FUNCTION webhook.condition_in_when(d webhook.topics) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT d.condition IS NOT NULL
       AND (d.builtin OR coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = d.definer), false))
$$;

-- The body of the generated trigger function of one definition. The
-- builder is called by its oid (webhook.call_builder), never by name.
CREATE OR REPLACE FUNCTION webhook.topic_trigger_source(d webhook.topics) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_type text;
    enqueue text;
    -- The table as the catalog names it; before it exists (a restore of a
    -- documented topic), the stored name parsed and quoted part by part.
    rel text := coalesce(to_regclass(d.source_table)::text,
                         (SELECT string_agg(quote_ident(p), '.') FROM unnest(parse_ident(d.source_table)) p));
    -- A row event names its table as defined, not TG_TABLE_NAME: on Citus
    -- the trigger fires on a shard (notes_102008).
    schema_and_table text[] := coalesce(
        (SELECT ARRAY[n.nspname::text, c.relname::text] FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = to_regclass(d.source_table)),
        parse_ident(d.source_table));
    -- A condition not in the triggers' WHEN clause is checked here first.
    check_condition text := CASE WHEN d.condition IS NOT NULL AND NOT webhook.condition_in_when(d)
                                 THEN format(E'    IF NOT coalesce((%s), false) THEN\n        RETURN %s;\n    END IF;\n',
                                             d.condition, CASE WHEN d.timing = 'before_delete' THEN 'OLD' ELSE 'NULL' END)
                                 ELSE '' END;
BEGIN
    IF d.builder IS NOT NULL THEN
        SELECT format_type(p.proargtypes[0], NULL) INTO key_type FROM pg_proc p WHERE p.oid = d.builder;
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
                          rel, d.key_column, d.key_column, d.condition)
               ELSE '' END
               || format(E'    body := webhook.call_builder(%L, NEW.%I::%s);\n', d.topic, d.key_column, key_type)
               || enqueue || E'    RETURN NULL;\n'
           WHEN 'before_delete' THEN
               check_condition
               || format(E'    body := webhook.call_builder(%L, OLD.%I::%s);\n', d.topic, d.key_column, key_type)
               || enqueue || E'    RETURN OLD;\n'
           WHEN 'statement' THEN
               format(E'    keys := ARRAY(SELECT r.%I FROM webhook_rows r ORDER BY 1);\n', d.key_column)
               || E'    IF cardinality(keys) = 0 THEN\n        RETURN NULL;\n    END IF;\n'
               || format(E'    body := webhook.call_builder(%L, keys);\n', d.topic)
               || enqueue || E'    RETURN NULL;\n'
           ELSE -- row
               check_condition
               || format(E'    body := webhook.row_event_body(%L, %L, %L, %s, %s, %L);\n',
                      d.operations[1], schema_and_table[1], schema_and_table[2],
                      CASE WHEN d.operations[1] = 'delete' THEN 'NULL' ELSE 'row_to_json(NEW)' END,
                      CASE WHEN d.operations[1] = 'insert' THEN 'NULL' ELSE 'row_to_json(OLD)' END,
                      coalesce(d.exclude_columns, '{}'))
               || enqueue || E'    RETURN NULL;\n'
           END
        || 'END';
END
$$;

-- Generated names are plain identifiers (0.2.0's had spaces and dots,
-- which Citus's propagation of a GRANT did not quote); the repair below
-- renames every topic's triggers and function.
CREATE OR REPLACE FUNCTION webhook.topic_trigger_name(topic text, operation text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 'webhook_' || left(regexp_replace(lower(topic), '[^a-z0-9]+', '_', 'g'), 40) || '_' || operation
       || '_' || left(md5(topic), 6);

CREATE FUNCTION webhook.topic_function_name(d webhook.topics) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN 'emit_' || left(regexp_replace(lower(d.topic), '[^a-z0-9]+', '_', 'g'), 45) || '_'
       || left(md5(concat_ws('|', d.topic, d.source_table, d.operations::text, d.columns::text, d.condition,
                             d.timing, d.builder::text, d.key_column, d.exclude_columns::text)), 8);
REVOKE ALL ON FUNCTION webhook.topic_function_name(webhook.topics) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.topic_function_name(webhook.topics) TO webhook_admin;

-- (Re)creates a definition's trigger function and, when its table exists,
-- its triggers. During a restore the table does not exist yet when
-- CREATE EXTENSION runs: the dump brings the table with its triggers.
CREATE OR REPLACE FUNCTION webhook.install_topic(topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
    rel regclass;
    fn regprocedure;
    op text;
    changed text;
    when_clause text;
BEGIN
    SELECT * INTO STRICT d FROM webhook.topics c WHERE c.topic = topic;
    -- A function of that name that is not the extension owner's was not
    -- made here: never take it over (its owner could change it later).
    fn := to_regprocedure(format('webhook_triggers.%I()', d.trigger_function));
    IF fn IS NOT NULL AND (SELECT p.proowner FROM pg_proc p WHERE p.oid = fn)
                          <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'webhook_emitter') THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_function',
            MESSAGE = format('topic: %s exists and is owned by %s, not by the extension''s owner; it is not replaced',
                             fn, (SELECT p.proowner::regrole FROM pg_proc p WHERE p.oid = fn)),
            HINT = 'A superuser should inspect and drop it; then define the topic again.';
    END IF;
    -- Not SECURITY DEFINER: webhook.emit_topic calls it as the topic's definer.
    EXECUTE format('CREATE OR REPLACE FUNCTION webhook_triggers.%I() RETURNS trigger '
                   'LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %L',
                   d.trigger_function, webhook.topic_trigger_source(d));
    EXECUTE format('COMMENT ON FUNCTION webhook_triggers.%I() IS %L', d.trigger_function,
                   format('Emits %s (generated from webhook.topics).', d.topic));
    EXECUTE format('REVOKE ALL ON FUNCTION webhook_triggers.%I() FROM PUBLIC', d.trigger_function);
    IF d.definer IS DISTINCT FROM (SELECT e.extowner::regrole FROM pg_extension e WHERE e.extname = 'webhook_emitter') THEN
        -- Records the definer as depending on the topic: DROP ROLE of a
        -- definer is refused while its topics exist.
        EXECUTE format('GRANT EXECUTE ON FUNCTION webhook_triggers.%I() TO %s', d.trigger_function, d.definer);
    END IF;
    rel := to_regclass(d.source_table);
    IF rel IS NULL THEN
        RETURN;
    END IF;
    FOREACH op IN ARRAY d.operations LOOP
        when_clause := CASE WHEN webhook.condition_in_when(d) THEN d.condition END;
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
        EXECUTE format('CREATE %s TRIGGER %I %s %s%s ON %s %s %s %s EXECUTE FUNCTION webhook.emit_topic(%L)',
            CASE WHEN d.timing = 'commit' THEN 'CONSTRAINT' ELSE '' END,
            webhook.topic_trigger_name(d.topic, op),
            CASE WHEN d.timing = 'before_delete' THEN 'BEFORE' ELSE 'AFTER' END,
            upper(op),
            CASE WHEN op = 'update' AND d.columns IS NOT NULL
                 THEN ' OF ' || (SELECT string_agg(quote_ident(c), ', ') FROM unnest(d.columns) c) ELSE '' END,
            rel,
            CASE WHEN d.timing = 'commit' THEN 'DEFERRABLE INITIALLY DEFERRED' ELSE '' END,
            CASE WHEN d.timing = 'statement' THEN 'REFERENCING NEW TABLE AS webhook_rows FOR EACH STATEMENT'
                 ELSE 'FOR EACH ROW' END,
            coalesce('WHEN (' || when_clause || ')', ''),
            d.topic);
    END LOOP;
END
$$;

-- Drops a definition's triggers and its generated function (a function
-- that came with the extension stays: it belongs to the extension).
CREATE OR REPLACE FUNCTION webhook.uninstall_topic(topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
    rel regclass;
    op text;
    fn regprocedure;
BEGIN
    SELECT * INTO STRICT d FROM webhook.topics c WHERE c.topic = topic;
    rel := to_regclass(d.source_table);
    IF rel IS NOT NULL THEN
        FOREACH op IN ARRAY d.operations LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', webhook.topic_trigger_name(d.topic, op), rel);
        END LOOP;
    END IF;
    fn := to_regprocedure(format('webhook_triggers.%I()', d.trigger_function));
    -- Only what the extension owner made is dropped (and not what came
    -- with the extension itself).
    IF fn IS NOT NULL
       AND (SELECT p.proowner FROM pg_proc p WHERE p.oid = fn)
           = (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'webhook_emitter')
       AND NOT EXISTS (
            SELECT FROM pg_depend x
             WHERE x.classid = 'pg_proc'::regclass AND x.objid = fn AND x.deptype = 'e') THEN
        EXECUTE format('DROP FUNCTION %s', fn);
    END IF;
END
$$;

-- The entry of define_topic and watch, as the caller: webhook.change_topic
-- stores the definition as the extension owner, the caller its definer.
-- documented: the extension's own scripts, which run as the extension
-- owner (store_topic is its alone).
CREATE OR REPLACE FUNCTION webhook.save_topic(d webhook.topics, replace boolean, documented boolean DEFAULT false)
RETURNS webhook.topics
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF documented THEN
        RETURN webhook.store_topic(d, replace, true);
    END IF;
    RETURN json_populate_record(NULL::webhook.topics, webhook.change_topic('save', row_to_json(d), replace));
END
$$;

-- A definition's condition, checked as the caller (who becomes its
-- definer) before anything is made as the extension owner: a boolean
-- expression over NEW (insert, update) and OLD (update, delete) that the
-- caller may evaluate (SELECT on what it reads). Nothing is evaluated.
CREATE FUNCTION webhook.check_condition(definition json) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass := to_regclass(definition ->> 'source_table');
    condition text := definition ->> 'condition';
    op text;
BEGIN
    IF condition IS NULL OR rel IS NULL OR length(condition) > 2000 THEN
        RETURN;  -- store_topic names what is wrong
    END IF;
    -- A Citus table is not read (Citus plans no cross join of it): its
    -- row type stands in, and the caller needs SELECT on the whole table.
    IF webhook.citus_copies(rel) > 0 AND NOT has_table_privilege(rel, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('condition: %s may not read %s (on Citus a condition needs SELECT on the whole table)', current_user, rel);
    END IF;
    FOR op IN SELECT json_array_elements_text(definition -> 'operations') LOOP
        BEGIN
            EXECUTE format('SELECT (%s)::boolean FROM %s LIMIT 0', condition,
                           CASE WHEN webhook.citus_copies(rel) > 0 THEN
                                    CASE op WHEN 'insert' THEN format('(SELECT (NULL::%s).*) AS "new"', rel)
                                            WHEN 'delete' THEN format('(SELECT (NULL::%s).*) AS "old"', rel)
                                            ELSE format('(SELECT (NULL::%s).*) AS "new" CROSS JOIN (SELECT (NULL::%s).*) AS "old"', rel, rel) END
                                ELSE
                                    CASE op WHEN 'insert' THEN format('%s AS "new"', rel)
                                            WHEN 'delete' THEN format('%s AS "old"', rel)
                                            ELSE format('%s AS "new" CROSS JOIN %s AS "old"', rel, rel) END
                           END);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                MESSAGE = format('condition: %s (on %s)', SQLERRM, op),
                HINT = 'The condition is a boolean expression over NEW.column for insert and update, OLD.column for update and delete.';
        END;
    END LOOP;
END
$$;

-- definer_role: whose rights the topic's code runs with (the caller of
-- webhook.change_topic; the extension owner for the documented topics).
-- Runs as the extension owner: what the definer may do is checked here.
CREATE FUNCTION webhook.store_topic(d webhook.topics, replace boolean, documented boolean DEFAULT false,
                                    definer_role regrole DEFAULT NULL)
RETURNS webhook.topics
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old webhook.topics;
    rel regclass;
    old_rel regclass;
    key_columns text[];
    key_type oid;
    op text;
    c text;
    b record;
BEGIN
    d.definer := coalesce(definer_role, current_user::regrole);
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
        IF webhook.citus_copies(rel) > 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = format('source_table: %s is a Citus reference table or has shard replicas: each write lands on every copy, so each event would be queued once per copy', rel),
                HINT = 'Emit from a distributed table (create_distributed_table, one copy of each shard) or a local one.';
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

    -- A superuser's topic runs its code as a superuser over this table: a
    -- role that owns the table or its schema could put its own code there
    -- (a view in place of a table the builder reads).
    -- (A schema owned by pg_database_owner, like public, is the database
    -- owner's.)
    IF rel IS NOT NULL AND (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = d.definer) AND EXISTS (
            SELECT FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
             CROSS JOIN LATERAL (VALUES (k.relowner),
                 (CASE WHEN n.nspowner = 'pg_database_owner'::regrole
                       THEN (SELECT db.datdba FROM pg_database db WHERE db.datname = current_database())
                       ELSE n.nspowner END)) o (owner)
             WHERE k.oid = rel AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = o.owner)) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('source_table: %s or its schema belongs to a role that is not a superuser, which could change what this topic runs as superuser %s', rel, d.definer),
            HINT = 'Define the topic as a role without superuser (a webhook_admin member with TRIGGER and SELECT on the tables its builder reads).';
    END IF;
    -- What the definer may do: triggers on the table (and on the one a
    -- replaced definition leaves); reading the rows its body carries.
    IF rel IS NOT NULL AND NOT has_table_privilege(d.definer, rel, 'TRIGGER') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('source_table: %s may not create triggers on %s', d.definer, rel),
            HINT = 'Defining a topic creates triggers on the table: that needs its owner or the TRIGGER privilege.';
    END IF;
    old_rel := to_regclass(old.source_table);
    IF old_rel IS NOT NULL AND NOT has_table_privilege(d.definer, old_rel, 'TRIGGER') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('topic: %L is bound to %s, on which %s may not drop triggers', d.topic, old_rel, d.definer),
            HINT = 'Rebinding a topic removes its triggers: that needs the TRIGGER privilege on its current table.';
    END IF;
    IF rel IS NOT NULL AND d.timing = 'row' THEN
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO c
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname <> ALL (coalesce(d.exclude_columns, '{}'))
           AND NOT has_column_privilege(d.definer, rel, a.attnum, 'SELECT');
        IF c IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('source_table: %s may not read %s of %s, which row events would carry', d.definer, c, rel),
                HINT = 'Exclude those columns (exclude_columns), or grant SELECT on them.';
        END IF;
    END IF;
    IF rel IS NOT NULL AND d.timing = 'commit' AND d.condition IS NOT NULL
       AND NOT has_table_privilege(d.definer, rel, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('condition: %s may not read %s; the condition is checked again at commit on the row as committed', d.definer, rel);
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
        -- Whoever owns the builder can change what it runs: the definer
        -- itself, or a superuser.
        IF NOT EXISTS (SELECT FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner
                        WHERE p.oid = d.builder AND (o.rolsuper OR p.proowner = d.definer)) THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('builder: %s belongs to %s, who could change what it runs as %s; the builder must be the definer''s own (or a superuser''s)',
                                 d.builder, (SELECT p.proowner::regrole FROM pg_proc p WHERE p.oid = d.builder), d.definer);
        END IF;
        IF NOT has_function_privilege(d.definer, d.builder, 'EXECUTE') THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('builder: %s may not execute %s; the trigger runs the builder with the definer''s rights', d.definer, d.builder);
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
    d.on_builder_error := coalesce(d.on_builder_error, 'queue');
    IF d.on_builder_error NOT IN ('queue', 'refuse') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('on_builder_error: %L is not supported; allowed: queue (the write commits, the event waits with the error until webhook.rebuild_events), refuse (the write fails)', d.on_builder_error);
    END IF;
    d.builtin := documented;
    d.trigger_function := webhook.topic_function_name(d);

    IF old.topic IS NOT NULL THEN
        PERFORM webhook.uninstall_topic(old.topic);
        DELETE FROM webhook.topics t WHERE t.topic = old.topic;
    END IF;
    -- Every column but the generated event_schema.
    INSERT INTO webhook.topics (topic, display_name, description, source, resource, action, sample_body,
        envelope, source_table, operations, columns, condition, timing, builder, key_column, exclude_columns,
        trigger_function, builtin, definer, on_builder_error, schema_overrides)
    SELECT d.topic, d.display_name, d.description, d.source, d.resource, d.action, d.sample_body,
        d.envelope, d.source_table, d.operations, d.columns, d.condition, d.timing, d.builder, d.key_column,
        d.exclude_columns, d.trigger_function, d.builtin, d.definer, d.on_builder_error, d.schema_overrides;
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

-- Drops a topic's definition, triggers and generated function.
CREATE OR REPLACE FUNCTION webhook.drop_topic(topic text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    PERFORM webhook.change_topic('drop', json_build_object('topic', topic), false);
END
$$;

-- drop_topic's work, as the extension owner; definer_role is the caller.
CREATE FUNCTION webhook.remove_topic(topic text, definer_role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    d webhook.topics;
    rel regclass;
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
    rel := to_regclass(d.source_table);
    IF rel IS NOT NULL AND NOT has_table_privilege(definer_role, rel, 'TRIGGER') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('topic: %L is bound to %s, on which %s may not drop triggers', topic, rel, definer_role),
            HINT = 'Dropping a topic removes its triggers: that needs the TRIGGER privilege on its table.';
    END IF;
    -- A webhook being deleted (delete_webhook found its row locked by a
    -- writer or the worker, and left its removal to the worker) is gone.
    SELECT string_agg(quote_literal(w.name), ', ' ORDER BY w.name) INTO users
      FROM webhook.webhooks w WHERE w.topics @> ARRAY[topic] AND w.deletion_requested_at IS NULL;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = format('topic: %L is subscribed by webhook %s', topic, users),
            HINT = 'Remove it from their topics (webhook.update_webhook) first.';
    END IF;
    PERFORM webhook.uninstall_topic(topic);
    DELETE FROM webhook.topics t WHERE t.topic = topic;
END
$$;

-- What webhook.change_topic (Rust) runs as the extension owner: only it
-- (and the extension owner) may execute this.
CREATE FUNCTION webhook.change_topic_as_owner(change text, definition json, replace boolean, definer_role oid)
RETURNS json
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF change = 'save' THEN
        RETURN row_to_json(webhook.store_topic(json_populate_record(NULL::webhook.topics, definition),
                                              coalesce(replace, false), false, definer_role::regrole));
    ELSIF change = 'drop' THEN
        PERFORM webhook.remove_topic(definition ->> 'topic', definer_role::regrole);
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('change: %L is not a change; allowed: save, drop', change);
END
$$;

-- Body templates may hold a static credential: masked for PUBLIC.
CREATE OR REPLACE VIEW webhook.webhook_list AS
SELECT id, name, webhook.redact_url(url) AS url, description, topics, content_type,
       auth_username,
       CASE WHEN auth_password IS NULL THEN NULL ELSE '********' END AS auth_password,
       -- A template may hold a static credential (an API key in the body).
       CASE WHEN body_template IS NULL THEN NULL ELSE '********' END AS body_template, enabled,
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
COMMENT ON VIEW webhook.webhook_list IS 'Webhooks with passwords, bearer tokens, signing secrets, client keys, OAuth2 client secrets, header values, body templates and URL query strings masked; held = deliveries kept while disabled; previous_signing_secret_until = end of a rotation''s overlap; filter = only events whose body contains it.';

-- Never waits for the application: a writer that queued an event for the
-- webhook holds its row (FOR KEY SHARE) until it commits, maybe for long
-- (a forgotten prepared transaction). Then the webhook is disabled, its
-- name freed, and the worker deletes it once those writers are done.
CREATE OR REPLACE FUNCTION webhook.delete_webhook(id bigint) RETURNS void
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

-- Validates every INSERT/UPDATE, whether from the API functions or plain DML.
CREATE OR REPLACE FUNCTION webhook.validate_webhook() RETURNS trigger
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

-- Issue 26: rebinding keeps what it is not given; builders proven when a
-- topic is defined, contained when they fail at a write, rebuilt later.
DROP FUNCTION webhook.define_topic(text, text, text, text[], text[], text, text, text, text, text, text, text, json, boolean);
CREATE FUNCTION webhook.define_topic(
    topic text,
    source_table text,
    builder text DEFAULT NULL,
    operations text[] DEFAULT NULL,
    columns text[] DEFAULT NULL,
    condition text DEFAULT NULL,
    timing text DEFAULT NULL,
    envelope text DEFAULT NULL,
    resource text DEFAULT NULL,
    action text DEFAULT NULL,
    display_name text DEFAULT NULL,
    description text DEFAULT NULL,
    sample_body json DEFAULT NULL,
    replace boolean DEFAULT false,
    on_builder_error text DEFAULT NULL
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
    IF replace THEN
        SELECT * INTO old FROM webhook.topics t WHERE t.topic = topic;
    END IF;
    IF old.timing = 'row' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('topic: %L is a row event of webhook.watch; change it with webhook.watch', topic);
    END IF;
    d.topic := topic;
    d.source_table := coalesce(source_table, old.source_table);
    IF builder IS NOT NULL THEN
        -- 'schema.name(argument types)', or a name that is not overloaded.
        d.builder := CASE WHEN strpos(builder, '(') > 0 THEN to_regprocedure(builder)
                          ELSE to_regproc(builder)::oid::regprocedure END;
        IF d.builder IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_function',
                MESSAGE = format('builder: function %L does not exist (or its name is overloaded)', builder),
                HINT = 'Name it with its schema and argument type, e.g. ''public.invoice_body(bigint)''.';
        END IF;
    ELSE
        d.builder := old.builder;
    END IF;
    d.operations := coalesce(operations, old.operations, '{insert}');
    d.columns := CASE WHEN columns = '{}' THEN NULL ELSE coalesce(columns, old.columns) END;
    d.condition := CASE WHEN btrim(condition) = '' THEN NULL ELSE coalesce(condition, old.condition) END;
    -- The timing follows the operations unless given: kept while they are.
    d.timing := coalesce(timing, CASE WHEN d.operations = old.operations THEN old.timing END);
    IF envelope IS NULL AND resource IS NULL AND action IS NULL AND old.topic IS NOT NULL THEN
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
        format('Fires on %s of %s.', array_to_string(d.operations, ', '), d.source_table));
    d.sample_body := coalesce(sample_body, old.sample_body);
    d.on_builder_error := coalesce(on_builder_error, old.on_builder_error);
    RETURN webhook.save_topic(d, replace);
END
$$;
COMMENT ON FUNCTION webhook.define_topic IS 'Define (or with replace => true redefine, keeping what is not given) a topic: which writes on which table emit it and which function builds its body; generates its triggers.';
CREATE FUNCTION webhook.check_builder(definition json) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass := to_regclass(definition ->> 'source_table');
    builder regprocedure := to_regprocedure(definition ->> 'builder');
    timing text := coalesce(definition ->> 'timing',
                            CASE WHEN definition ->> 'operations' = '["delete"]' THEN 'before_delete' ELSE 'commit' END);
    key_column text;
    arg_type text;
    validator regproc;
    path text;
    sample text;
BEGIN
    IF rel IS NULL OR builder IS NULL OR timing = 'row' THEN
        RETURN;  -- store_topic names what is wrong
    END IF;
    SELECT min(a.attname) INTO key_column
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = rel AND i.indisprimary AND cardinality(i.indkey::int2[]) = 1;
    SELECT format_type(p.proargtypes[0], NULL), l.lanvalidator,
           (SELECT substr(c, 13) FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
      INTO arg_type, validator, path
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = builder AND p.pronargs = 1;
    IF key_column IS NULL OR arg_type IS NULL OR NOT has_function_privilege(builder, 'EXECUTE')
       OR NOT has_table_privilege(rel, 'SELECT') THEN
        RETURN;  -- store_topic names what is wrong
    END IF;
    BEGIN
        EXECUTE format('SELECT %I::text FROM %s LIMIT 1', key_column, rel) INTO sample;
        IF sample IS NOT NULL THEN
            -- A statement topic's builder takes an array of keys.
            EXECUTE format('SELECT %s($1::%s)', builder::oid::regproc, arg_type)
              USING CASE WHEN timing = 'statement' THEN '{' || sample || '}' ELSE sample END;
        ELSIF validator IS NOT NULL AND validator <> 0 THEN
            PERFORM set_config('check_function_bodies', 'on', true);
            IF path IS NOT NULL THEN
                PERFORM set_config('search_path', path, true);
            END IF;
            EXECUTE format('SELECT %s($1)', validator) USING builder::oid;
        END IF;
        RAISE SQLSTATE 'WHPRV';  -- undo whatever the builder did
    EXCEPTION
        WHEN SQLSTATE 'WHPRV' THEN
            NULL;
        WHEN OTHERS THEN
            RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                MESSAGE = format('builder: %s fails %s: %s', builder,
                                 CASE WHEN sample IS NOT NULL THEN format('on the row of %s with %s = %s', rel, key_column, sample)
                                      ELSE 'to check under the settings it runs with' END, SQLERRM),
                HINT = 'The builder runs with search_path = pg_catalog, pg_temp: schema-qualify every table and function it names (public.mdl_user), or give it its own SET search_path.';
    END;
END
$$;
CREATE OR REPLACE FUNCTION webhook.topic_reference() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (
    SELECT E'# Topic reference\n\n'
        || E'Generated by `SELECT webhook.topic_reference()` from the topic definitions in\n'
        || E'`webhook.topics` (for the documented topics: `sql/lms/topics/*.sql`). Which write fires\n'
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
                      CASE WHEN t.condition IS NOT NULL THEN format('; only when `%s`', t.condition) END,
                      CASE WHEN t.on_builder_error = 'refuse' THEN '; a builder error fails the write' END),
               t.sample_body::text),
           E'\n' ORDER BY array_position(ARRAY['braincert', 'aom', 'custom'], t.source), t.topic)
    FROM webhook.topics t
);
COMMENT ON FUNCTION webhook.topic_reference IS 'The topic reference (names, when they fire, sample bodies) in Markdown, from the definitions; docs/topics.md is its output on a fresh install.';
CREATE FUNCTION webhook.rebuild_events(topic text DEFAULT NULL, max_events integer DEFAULT 10000, discard boolean DEFAULT false)
RETURNS TABLE (rebuilt bigint, still_failing bigint, discarded bigint)
LANGUAGE c /* Rust */ SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'rebuild_events_wrapper';
COMMENT ON FUNCTION webhook.rebuild_events IS 'Build again the events whose builder failed (deliveries unbuilt), as the topic''s definer, and release them; with discard => true remove them instead. At most max_events per call.';

-- Issue 29: the fan-out (sql/engine/queue.sql) -----------------------------------

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
-- snapshots', 'locks busy', or 'emptied'; when a rotation is overdue by
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

-- A rotation changes the slot the write path queues into.
CREATE TRIGGER subscriptions_changed
    AFTER UPDATE ON webhook.log_slots
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.subscriptions_changed();

-- The worker records a batch, its counters and its hourly summary in one
-- statement of its own (src/worker/record.rs).
DROP FUNCTION webhook.count_outcomes(bigint[], text[]);


-- 0.3.0: the delivery log summed per webhook and hour, written by the worker
-- with each recorded batch (src/worker/record.rs), so that webhook_health and
-- delivery_latency read a few rows per webhook instead of the log itself.
-- Histograms: count per bucket of webhook.histogram_bucket() (128 buckets,
-- each 2^(1/4) wider than the last: percentiles within 10% and 0.1 ms). Send Test's
-- attempts are not counted. Kept as long as the log (webhook.retention).
CREATE TABLE webhook.delivery_stats (
    webhook_id        bigint NOT NULL REFERENCES webhook.webhooks (id) ON DELETE CASCADE,
    hour              timestamptz NOT NULL,  -- the attempts' start, truncated to the UTC hour
    attempts          bigint NOT NULL DEFAULT 0,
    successes         bigint NOT NULL DEFAULT 0,  -- attempts answered 2xx
    delivered         bigint NOT NULL DEFAULT 0,
    dead              bigint NOT NULL DEFAULT 0,
    last_success_at   timestamptz,
    last_failure_at   timestamptz,
    round_trip_ms     bigint[] NOT NULL,  -- histogram of the attempts' HTTP round trip
    round_trip_max_ms double precision,
    latency_ms        bigint[] NOT NULL,  -- histogram of queued-to-delivered, delivered ones
    latency_max_ms    double precision,
    PRIMARY KEY (webhook_id, hour)
);
COMMENT ON TABLE webhook.delivery_stats IS 'The delivery log per webhook and hour: attempts, successes, delivered, dead, last success/failure, histograms of round trip and queued-to-delivered (webhook.histogram_percentile); read by webhook_health and delivery_latency.';
SELECT pg_catalog.pg_extension_config_dump('webhook.delivery_stats', '');

-- Histograms of milliseconds (webhook.delivery_stats): webhook.histogram,
-- histogram_bucket, histogram_add and histogram_percentile are Rust
-- (src/stats.rs, where the buckets are defined).
CREATE FUNCTION webhook.histogram(values_ms double precision[]) RETURNS bigint[]
IMMUTABLE PARALLEL SAFE LANGUAGE c /* Rust */ AS 'MODULE_PATHNAME', 'histogram_wrapper';
CREATE FUNCTION webhook.histogram_add(a bigint[], b bigint[]) RETURNS bigint[]
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c /* Rust */ AS 'MODULE_PATHNAME', 'histogram_add_wrapper';
CREATE FUNCTION webhook.histogram_bucket(ms double precision) RETURNS integer
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c /* Rust */ AS 'MODULE_PATHNAME', 'histogram_bucket_wrapper';
CREATE FUNCTION webhook.histogram_percentile(histogram bigint[], q double precision, max_ms double precision)
RETURNS double precision
IMMUTABLE PARALLEL SAFE LANGUAGE c /* Rust */ AS 'MODULE_PATHNAME', 'histogram_percentile_wrapper';
-- The counters' latency histogram of a recorded batch (webhook.delivery_counters).
CREATE FUNCTION webhook.histogram_le(values_s double precision[], bounds_s double precision[]) RETURNS bigint[]
IMMUTABLE PARALLEL SAFE LANGUAGE c /* Rust */ AS 'MODULE_PATHNAME', 'histogram_le_wrapper';

-- The sum of histograms (over hours, say).
CREATE AGGREGATE webhook.histogram_sum(bigint[]) (SFUNC = webhook.histogram_add, STYPE = bigint[]);

-- webhook.delivery_stats computed again from the delivery log kept (run by
-- the upgrade from 0.2.0, and after the log was written by hand): by the
-- UTC hour each attempt started (a delivery's last one, last_attempt_at,
-- for delivered and dead), as the worker sums them. Superuser only; the
-- worker's recording waits for it. Returns the rows written.
CREATE FUNCTION webhook.rebuild_delivery_stats() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE webhook.delivery_stats IN EXCLUSIVE MODE;
    DELETE FROM webhook.delivery_stats;
    WITH tried AS (
        SELECT d.webhook_id, date_trunc('hour', a.started_at, 'UTC') AS hour,
               count(*) AS attempts,
               count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS successes,
               max(a.started_at) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS last_success_at,
               max(a.started_at) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
                   AS last_failure_at,
               webhook.histogram(array_agg(a.duration_ms)) AS round_trip_ms,
               max(a.duration_ms) AS round_trip_max_ms
          FROM webhook.attempts a JOIN webhook.deliveries d ON d.id = a.delivery_id
         WHERE NOT d.is_test
         GROUP BY 1, 2),
    ended AS (
        SELECT d.webhook_id, date_trunc('hour', d.last_attempt_at, 'UTC') AS hour,
               count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
               count(*) FILTER (WHERE d.status = 'dead') AS dead,
               webhook.histogram(array_agg(1000 * extract(epoch FROM d.delivered_at - d.created_at)::float8)
                                 FILTER (WHERE d.status = 'delivered')) AS latency_ms,
               max(1000 * extract(epoch FROM d.delivered_at - d.created_at)::float8)
                   FILTER (WHERE d.status = 'delivered') AS latency_max_ms
          FROM webhook.deliveries d
         WHERE d.status IN ('delivered', 'dead') AND NOT d.is_test
           AND d.last_attempt_at IS NOT NULL
         GROUP BY 1, 2)
    INSERT INTO webhook.delivery_stats
        (webhook_id, hour, attempts, successes, delivered, dead, last_success_at, last_failure_at,
         round_trip_ms, round_trip_max_ms, latency_ms, latency_max_ms)
    SELECT coalesce(t.webhook_id, e.webhook_id), coalesce(t.hour, e.hour),
           coalesce(t.attempts, 0), coalesce(t.successes, 0), coalesce(e.delivered, 0), coalesce(e.dead, 0),
           t.last_success_at, t.last_failure_at,
           coalesce(t.round_trip_ms, webhook.histogram('{}')), t.round_trip_max_ms,
           coalesce(e.latency_ms, webhook.histogram('{}')), e.latency_max_ms
      FROM tried t FULL JOIN ended e ON e.webhook_id = t.webhook_id AND e.hour = t.hour;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- New deliveries being sent whose outcome is not recorded yet: the worker
-- claims them as it makes them (webhook.fan_out) and inserts each into
-- webhook.deliveries once, with its outcome; until then they are listed
-- here, shaped like webhook.deliveries rows (webhook.in_flight_batches).
CREATE VIEW webhook.in_flight AS
SELECT u.id, u.event_id, u.webhook_id, 'delivering'::text AS status, 1 AS attempts,
       b.claimed_at AS last_attempt_at, b.lease_until
  FROM webhook.in_flight_batches b
 CROSS JOIN LATERAL unnest(b.deliveries, b.event_ids, b.webhook_ids) AS u(id, event_id, webhook_id)
 -- Written: the delivery of that event to that webhook exists (under
 -- another id when its own was taken: a subscriber's replicated rows).
 WHERE NOT EXISTS (SELECT FROM webhook.deliveries d WHERE d.event_id = u.event_id AND d.webhook_id = u.webhook_id);
COMMENT ON VIEW webhook.in_flight IS 'New deliveries being sent, not yet in webhook.deliveries (inserted there once, with their outcome).';
GRANT SELECT ON webhook.in_flight TO PUBLIC;

-- Per-webhook health over the current hour and the 23 before it, from
-- webhook.delivery_stats; the backlog counts read the queue's partial
-- indexes (pending and failed, ordered sequences, leased), never the log:
-- their cost grows with the backlog, not with the log kept.
CREATE OR REPLACE VIEW webhook.webhook_health AS
SELECT w.id AS webhook_id, w.name, w.enabled, w.disabled_reason, w.failing_since,
       coalesce(s.attempts, 0) AS attempts_24h,
       coalesce(s.successes, 0) AS successes_24h,
       round(100.0 * s.successes / nullif(s.attempts, 0), 1) AS success_rate_pct,
       s.last_success_at, s.last_failure_at,
       webhook.histogram_percentile(s.round_trip_ms, 0.5, s.round_trip_max_ms) AS latency_p50_ms,
       webhook.histogram_percentile(s.round_trip_ms, 0.95, s.round_trip_max_ms) AS latency_p95_ms,
       webhook.histogram_percentile(s.round_trip_ms, 0.99, s.round_trip_max_ms) AS latency_p99_ms,
       coalesce(q.queued, 0)
     + (SELECT count(*) FROM webhook.deliveries p
         WHERE p.webhook_id = w.id AND p.order_key IS NOT NULL AND p.status IN ('pending', 'failed', 'delivering'))
     + (SELECT count(*) FROM webhook.deliveries p
         WHERE p.webhook_id = w.id AND p.status = 'delivering' AND p.order_key IS NULL)
     + (SELECT count(*) FROM webhook.in_flight f WHERE f.webhook_id = w.id) AS backlog,
       (SELECT count(*) FROM webhook.deliveries h WHERE h.webhook_id = w.id AND h.status = 'held') AS held,
       -- 0.3.0: events whose builder failed, waiting for webhook.rebuild_events.
       (SELECT count(*) FROM webhook.deliveries u WHERE u.webhook_id = w.id AND u.status = 'unbuilt') AS unbuilt
FROM webhook.webhooks w
LEFT JOIN LATERAL (
    SELECT sum(h.attempts)::bigint AS attempts, sum(h.successes)::bigint AS successes,
           max(h.last_success_at) AS last_success_at, max(h.last_failure_at) AS last_failure_at,
           webhook.histogram_sum(h.round_trip_ms) AS round_trip_ms, max(h.round_trip_max_ms) AS round_trip_max_ms
      FROM webhook.delivery_stats h
     WHERE h.webhook_id = w.id AND h.hour >= date_trunc('hour', now(), 'UTC') - interval '23 hours') s ON true
-- One pass over deliveries_due_idx for every webhook (index only).
LEFT JOIN (SELECT p.webhook_id, count(*) AS queued FROM webhook.deliveries p
            WHERE p.status IN ('pending', 'failed') AND p.order_key IS NULL
            GROUP BY p.webhook_id) q ON q.webhook_id = w.id;
COMMENT ON VIEW webhook.webhook_health IS 'Per webhook: success rate, last success/failure, round-trip percentiles (the current hour and the 23 before it, within 10% and 0.1 ms), backlog, held deliveries, and unbuilt ones (their builder failed; see webhook.rebuild_events).';
CREATE OR REPLACE FUNCTION webhook.metrics() RETURNS text
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
               count(d.id) FILTER (WHERE d.status = 'delivering')
                 + (SELECT count(*) FROM webhook.in_flight f WHERE f.webhook_id = h.id) AS in_flight,
               count(d.id) FILTER (WHERE d.status = 'pending') AS pending,
               count(d.id) FILTER (WHERE d.status = 'failed') AS retrying,
               count(d.id) FILTER (WHERE d.status = 'held') AS held,
               count(d.id) FILTER (WHERE d.status = 'unbuilt') AS unbuilt,
               coalesce(extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.status IN ('pending', 'failed'))), 0)
                   AS oldest_pending
          FROM hooks h
          LEFT JOIN webhook.deliveries d ON d.webhook_id = h.id AND d.status IN ('delivering', 'pending', 'failed', 'held', 'unbuilt')
         GROUP BY h.id, h.labels),
    lines (family, series, ord, line) AS (
        SELECT 1, '', 0, E'# HELP webhook_deliveries_total Finished delivery attempts by outcome (failed: will be retried; dead: given up).\n# TYPE webhook_deliveries_total counter'
        UNION ALL SELECT 1, c.labels, o.ord, format('webhook_deliveries_total{%s,outcome="%s"} %s', c.labels, o.outcome, o.n)
          FROM counters c, LATERAL (VALUES (1, 'delivered', c.delivered), (2, 'failed', c.failed), (3, 'dead', c.dead)) AS o(ord, outcome, n)
        UNION ALL SELECT 2, '', 0, E'# HELP webhook_retries_total Attempts after the first.\n# TYPE webhook_retries_total counter'
        UNION ALL SELECT 2, c.labels, 1, format('webhook_retries_total{%s} %s', c.labels, c.retried) FROM counters c
        UNION ALL SELECT 3, '', 0, E'# HELP webhook_in_flight Deliveries being sent now.\n# TYPE webhook_in_flight gauge'
        UNION ALL SELECT 3, q.labels, 1, format('webhook_in_flight{%s} %s', q.labels, q.in_flight) FROM queue q
        UNION ALL SELECT 4, '', 0, E'# HELP webhook_backlog Deliveries waiting: pending (never tried), retrying (failed, due again later), held (webhook disabled), unbuilt (the builder failed; webhook.rebuild_events).\n# TYPE webhook_backlog gauge'
        UNION ALL SELECT 4, q.labels, b.ord, format('webhook_backlog{%s,state="%s"} %s', q.labels, b.state, b.n)
          FROM queue q, LATERAL (VALUES (1, 'pending', q.pending), (2, 'retrying', q.retrying), (3, 'held', q.held), (4, 'unbuilt', q.unbuilt)) AS b(ord, state, n)
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

-- Logical replication: a replicated delivery is never sent here; the
-- replace-row and cache triggers also fire for replicated rows.
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
CREATE TRIGGER deliveries_still_replicated AFTER UPDATE ON webhook.deliveries
    FOR EACH ROW WHEN (NEW.status <> 'replicated') EXECUTE FUNCTION webhook.mark_replicated();
ALTER TABLE webhook.deliveries ENABLE REPLICA TRIGGER deliveries_replicated;
ALTER TABLE webhook.deliveries ENABLE REPLICA TRIGGER deliveries_still_replicated;
ALTER TABLE webhook.settings ENABLE ALWAYS TRIGGER settings_replace_row;
ALTER TABLE webhook.topics ENABLE ALWAYS TRIGGER topics_replace_row;
ALTER TABLE webhook.webhooks ENABLE ALWAYS TRIGGER subscriptions_changed;
ALTER TABLE webhook.settings ENABLE ALWAYS TRIGGER subscriptions_changed;
ALTER TABLE webhook.topics ENABLE ALWAYS TRIGGER subscriptions_changed;

-- create_webhook and update_webhook are Rust (src/settings/api.rs), with the
-- rules of the row's own values (webhook.check_webhook, src/settings/rules.rs).
CREATE OR REPLACE FUNCTION webhook.check_webhook(
    "webhook" jsonb
) RETURNS void
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_webhook_wrapper';
-- New arguments (outcome callbacks): the 0.2.0 signatures go.
DROP FUNCTION webhook.create_webhook(text, text, text[], text, text, text, text, text, boolean, text, boolean, jsonb,
    integer, text, integer, text, text, text, text, text, text, text, text, jsonb);
DROP FUNCTION webhook.update_webhook(bigint, text, text, text[], text, text, text, text, text, boolean, text, jsonb,
    integer, boolean, boolean, boolean, boolean, interval, text, boolean, integer, boolean, text, text, text, text,
    boolean, text, text, text, text, boolean, jsonb, boolean);
CREATE FUNCTION webhook.create_webhook(
    "name" TEXT,
    "url" TEXT,
    "topics" TEXT[],
    "content_type" TEXT DEFAULT 'application/json',
    "description" TEXT DEFAULT NULL,
    "auth_username" TEXT DEFAULT NULL,
    "auth_password" TEXT DEFAULT NULL,
    "body_template" TEXT DEFAULT NULL,
    "enabled" bool DEFAULT true,
    "signing_secret" TEXT DEFAULT NULL,
    "generate_signing_secret" bool DEFAULT false,
    "headers" jsonb DEFAULT '{}',
    "timeout_ms" INT DEFAULT NULL,
    "bearer_token" TEXT DEFAULT NULL,
    "rate_limit_per_second" INT DEFAULT NULL,
    "ordering" TEXT DEFAULT 'none',
    "ordering_key" TEXT DEFAULT NULL,
    "client_certificate" TEXT DEFAULT NULL,
    "client_key" TEXT DEFAULT NULL,
    "oauth2_token_url" TEXT DEFAULT NULL,
    "oauth2_client_id" TEXT DEFAULT NULL,
    "oauth2_client_secret" TEXT DEFAULT NULL,
    "oauth2_scope" TEXT DEFAULT NULL,
    "filter" jsonb DEFAULT NULL,
    "outcome_callback" TEXT DEFAULT NULL,
    "callback_on_failure" bool DEFAULT false
) RETURNS bigint
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_webhook_wrapper';
CREATE FUNCTION webhook.update_webhook(
    "id" bigint,
    "name" TEXT DEFAULT NULL,
    "url" TEXT DEFAULT NULL,
    "topics" TEXT[] DEFAULT NULL,
    "content_type" TEXT DEFAULT NULL,
    "description" TEXT DEFAULT NULL,
    "auth_username" TEXT DEFAULT NULL,
    "auth_password" TEXT DEFAULT NULL,
    "body_template" TEXT DEFAULT NULL,
    "enabled" bool DEFAULT NULL,
    "signing_secret" TEXT DEFAULT NULL,
    "headers" jsonb DEFAULT NULL,
    "timeout_ms" INT DEFAULT NULL,
    "clear_auth" bool DEFAULT false,
    "clear_body_template" bool DEFAULT false,
    "clear_signing_secret" bool DEFAULT false,
    "rotate_signing_secret" bool DEFAULT false,
    "rotation_overlap" interval DEFAULT '24:00:00',
    "bearer_token" TEXT DEFAULT NULL,
    "clear_bearer_token" bool DEFAULT false,
    "rate_limit_per_second" INT DEFAULT NULL,
    "clear_rate_limit" bool DEFAULT false,
    "ordering" TEXT DEFAULT NULL,
    "ordering_key" TEXT DEFAULT NULL,
    "client_certificate" TEXT DEFAULT NULL,
    "client_key" TEXT DEFAULT NULL,
    "clear_client_certificate" bool DEFAULT false,
    "oauth2_token_url" TEXT DEFAULT NULL,
    "oauth2_client_id" TEXT DEFAULT NULL,
    "oauth2_client_secret" TEXT DEFAULT NULL,
    "oauth2_scope" TEXT DEFAULT NULL,
    "clear_oauth2" bool DEFAULT false,
    "filter" jsonb DEFAULT NULL,
    "clear_filter" bool DEFAULT false,
    "outcome_callback" TEXT DEFAULT NULL,
    "callback_on_failure" bool DEFAULT NULL,
    "clear_outcome_callback" bool DEFAULT false
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'update_webhook_wrapper';
COMMENT ON FUNCTION webhook.create_webhook IS 'Register a webhook; returns its id. Raises 22023 naming the field on bad input.';
COMMENT ON FUNCTION webhook.update_webhook IS 'Change only the given settings of a webhook (NULL = unchanged; clear_* to remove optional ones).';
-- Who may be an outcome callback, run as whom (src/settings/rules.rs).
CREATE FUNCTION webhook.check_outcome_callback(
    "callback" oid,
    "owner" oid
) RETURNS void
STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_outcome_callback_wrapper';

-- The API functions that change the queue (webhook_admin reads it only),
-- and webhook.enqueue, which the generated functions call as the definer.
ALTER FUNCTION webhook.enable_webhook(bigint, boolean) SECURITY DEFINER;
ALTER FUNCTION webhook.disable_webhook(bigint, text) SECURITY DEFINER;

-- On Citus, enable_webhook and disable_webhook set the enabled state on
-- every node (and discard_held drops what each held): cluster.sql.
CREATE OR REPLACE FUNCTION webhook.enable_webhook(id bigint, discard_held boolean DEFAULT false) RETURNS bigint
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
CREATE OR REPLACE FUNCTION webhook.disable_webhook(id bigint, reason text DEFAULT NULL) RETURNS void
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
ALTER FUNCTION webhook.set_enabled(boolean) SECURITY DEFINER;
ALTER FUNCTION webhook.set_tenant_id(text) SECURITY DEFINER;
-- 0.3.0: a new delivery being sent (webhook.in_flight) is not written yet.
-- Re-queue one failed or dead delivery; the event (and its id) is unchanged.
-- SECURITY DEFINER (here and in replay): webhook_admin reads the queue
-- but changes it only through these functions.
CREATE OR REPLACE FUNCTION webhook.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    current_status text;
BEGIN
    SELECT d.status INTO current_status FROM webhook.deliveries d WHERE d.id = delivery_id FOR UPDATE;
    IF NOT FOUND THEN
        -- 0.3.0: a new one being sent is not written yet.
        IF NOT EXISTS (SELECT FROM webhook.in_flight f WHERE f.id = delivery_id) THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found',
                MESSAGE = format('delivery_id: delivery %s does not exist', delivery_id);
        END IF;
        current_status := 'delivering';
    END IF;
    IF current_status NOT IN ('failed', 'dead') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('delivery_id: delivery %s is %s; only failed or dead deliveries can be redelivered',
                             delivery_id, current_status);
    END IF;
    UPDATE webhook.deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL
    WHERE d.id = delivery_id;
    PERFORM webhook.wake_worker_at_commit();
END
$$;
ALTER FUNCTION webhook.replay(bigint, timestamptz, timestamptz) SECURITY DEFINER;
ALTER FUNCTION webhook.send_test(bigint, text) SECURITY DEFINER SET search_path TO pg_catalog, pg_temp;
ALTER FUNCTION webhook.enqueue(text, json) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Tightening the schema of one's own topic (src/catalog).
CREATE FUNCTION webhook.tighten_event_schema(
    "topic" TEXT,
    "overrides" jsonb
) RETURNS jsonb
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'tighten_event_schema_wrapper';
-- A topic's event schema, and the OpenAPI 3.1 document of every topic (src/catalog).
CREATE FUNCTION webhook.event_schema(topic text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT t.event_schema FROM webhook.topics t WHERE t.topic = event_schema.topic);
COMMENT ON FUNCTION webhook.event_schema(text) IS 'The JSON Schema (draft 2020-12) of a topic''s body; webhook.event_catalog() gives every topic as one OpenAPI 3.1 document.';
CREATE FUNCTION webhook.event_catalog() RETURNS jsonb
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'event_catalog_wrapper';

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

-- A disabled webhook is announced.
CREATE OR REPLACE FUNCTION webhook.hold_or_release_deliveries() RETURNS trigger
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

-- How late webhooks are: from the event's queueing (the writing
-- transaction) to its delivery, per webhook and hour, from
-- webhook.delivery_stats (kept as long as the log, webhook.retention).
-- webhook_health's latency is the HTTP round trip.
CREATE VIEW webhook.delivery_latency AS
SELECT s.webhook_id, w.name, s.hour, s.delivered,
       round(webhook.histogram_percentile(s.latency_ms, 0.5, s.latency_max_ms)::numeric, 1) AS p50_ms,
       round(webhook.histogram_percentile(s.latency_ms, 0.95, s.latency_max_ms)::numeric, 1) AS p95_ms,
       round(webhook.histogram_percentile(s.latency_ms, 0.99, s.latency_max_ms)::numeric, 1) AS p99_ms,
       round(s.latency_max_ms::numeric, 1) AS max_ms
  FROM webhook.delivery_stats s
  JOIN webhook.webhooks w ON w.id = s.webhook_id
 WHERE s.delivered > 0;
COMMENT ON VIEW webhook.delivery_latency IS 'Queued to delivered, per webhook and hour: deliveries, p50/p95/p99 (within 10% and 0.1 ms) and max in ms (kept as long as the log, webhook.retention).';

-- Privileges (sql/engine/grants.sql) ------------------------------------------------

REVOKE ALL ON SCHEMA webhook_triggers FROM PUBLIC, webhook_admin;
REVOKE INSERT, UPDATE, DELETE ON webhook.topics, webhook.webhooks FROM webhook_admin;
REVOKE UPDATE ON webhook.settings FROM webhook_admin;
REVOKE ALL ON FUNCTION webhook.emit_topic(), webhook.change_topic(text, json, boolean),
    webhook.call_builder(text, anyelement), webhook.condition_in_when(webhook.topics),
    webhook.check_condition(json),
    webhook.store_topic(webhook.topics, boolean, boolean, regrole), webhook.remove_topic(text, regrole),
    webhook.change_topic_as_owner(text, json, boolean, oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.change_topic(text, json, boolean), webhook.call_builder(text, anyelement),
    webhook.condition_in_when(webhook.topics), webhook.check_condition(json) TO webhook_admin;
REVOKE EXECUTE ON FUNCTION webhook.install_topic(text), webhook.uninstall_topic(text),
    webhook.define_documented_topic(text, text, text, text, text, regprocedure, json, text[], text[], text, text, text, text)
    FROM webhook_admin;

REVOKE ALL ON FUNCTION webhook.define_topic(text, text, text, text[], text[], text, text, text, text, text, text, text, json, boolean, text),
    webhook.check_builder(json), webhook.rebuild_events(text, integer, boolean), webhook.mark_replicated() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.define_topic(text, text, text, text[], text[], text, text, text, text, text, text, text, json, boolean, text),
    webhook.check_builder(json), webhook.rebuild_events(text, integer, boolean) TO webhook_admin;
REVOKE ALL ON FUNCTION webhook.check_webhook(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.check_webhook(jsonb) TO webhook_admin;
REVOKE ALL ON FUNCTION webhook.infer_event_schema(text, text, text, json, jsonb), webhook.event_catalog(),
    webhook.event_schema(text), webhook.tighten_event_schema(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.infer_event_schema(text, text, text, json, jsonb), webhook.event_catalog(),
    webhook.event_schema(text), webhook.tighten_event_schema(text, jsonb) TO webhook_admin;
GRANT EXECUTE ON FUNCTION webhook.event_catalog(), webhook.event_schema(text) TO PUBLIC;
REVOKE ALL ON webhook.delivery_latency FROM PUBLIC;
GRANT SELECT ON webhook.delivery_latency TO PUBLIC;
REVOKE ALL ON webhook.delivery_stats FROM PUBLIC;
GRANT SELECT ON webhook.delivery_stats TO PUBLIC;
REVOKE ALL ON webhook.fanout FROM PUBLIC;
REVOKE ALL ON webhook.in_flight_batches FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook.rebuild_delivery_stats(), webhook.fan_out(bigint, bigint[], double precision, bigint, bigint),
    webhook.fanout_restore_row(), webhook.replicated_event(), webhook.skip_replicated_row(),
    webhook.snapshot_before_me(), webhook.body_matches(json, jsonb), webhook.order_key_of(json, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.histogram_bucket(double precision), webhook.histogram(double precision[]),
    webhook.histogram_add(bigint[], bigint[]), webhook.histogram_sum(bigint[]),
    webhook.histogram_percentile(bigint[], double precision, double precision),
    webhook.histogram_le(double precision[], double precision[]) TO PUBLIC, webhook_admin;
REVOKE ALL ON FUNCTION webhook.create_webhook, webhook.update_webhook,
    webhook.check_outcome_callback(oid, oid), webhook.notify(text, jsonb),
    webhook.notify_dead_deliveries(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.create_webhook, webhook.update_webhook,
    webhook.check_outcome_callback(oid, oid) TO webhook_admin;
REVOKE ALL ON webhook.outcomes FROM PUBLIC;
GRANT SELECT (id, delivery_id, webhook_id, status, tries, next_try_at, created_at, done_at)
    ON webhook.outcomes TO PUBLIC;
GRANT SELECT ON webhook.outcomes TO webhook_admin;

-- Citus: the registry copied to every node (new; sql/engine/cluster.sql).
-- Rust (src/worker/node_state.rs): who may write the registry on a worker node.
CREATE FUNCTION webhook.writing_node_state() RETURNS boolean
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'writing_node_state_wrapper';
CREATE FUNCTION webhook.applying_registry() RETURNS boolean
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'applying_registry_wrapper';
CREATE FUNCTION webhook.begin_registry_apply() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'begin_registry_apply_wrapper';
--
-- Citus runs CREATE EXTENSION on every node, so each node has its own
-- queue, log and delivery worker, and a trigger on a shard queues its
-- events on the node that holds the shard. What must be the same on every
-- node is the registry: webhook.settings, webhook.topics and
-- webhook.webhooks (secrets included). Those stay plain local tables,
-- read by the write path and the worker as on a single server; their rows
-- are copied, as json (key order kept: a sample body's order is the
-- envelope's), into webhook.registry_copy, which
-- webhook.distribute_registry() makes a Citus reference table. Citus
-- writes a reference table on every node in the coordinator's
-- transaction (two-phase commit), and a trigger on each node's placement
-- applies the row to that node's tables: a change made on the coordinator
-- commits on every node or on none. Elsewhere (no Citus, or the copy not
-- distributed) nothing here does anything but return.

CREATE TABLE webhook.registry_copy (
    relname text NOT NULL CONSTRAINT registry_copy_relname_check
            CHECK (relname IN ('settings', 'topics', 'webhooks')),
    key     text NOT NULL,          -- the row's primary key, as text
    content json NOT NULL,          -- row_to_json of the row
    -- Of a webhook, the columns the coordinator's change set (NULL: all):
    -- a node applies only those, so what its worker recorded in the others
    -- (an endpoint failing or disabled there) stays.
    changed text[],
    -- enable_webhook(..., discard_held => true): the nodes drop what they held.
    discard_held boolean NOT NULL DEFAULT false,
    PRIMARY KEY (relname, key)
);
COMMENT ON TABLE webhook.registry_copy IS 'On Citus: the coordinator''s registry rows (secrets included), a reference table whose placements apply them to every node''s registry. Superuser only.';

-- 'coordinator', 'worker', or 'none' (no Citus in this database).
CREATE FUNCTION webhook.citus_node_role() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    group_id integer;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN 'none';
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO group_id;
    RETURN CASE WHEN group_id IS NULL THEN 'none' WHEN group_id = 0 THEN 'coordinator' ELSE 'worker' END;
END
$$;

-- How many copies Citus keeps of each shard of a table: 0 when Citus
-- does not distribute it, 1 for a distributed table, more for a reference
-- table or shards with replicas (a trigger there fires on every copy).
CREATE FUNCTION webhook.citus_copies(rel regclass) RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    copies integer;
BEGIN
    IF rel IS NULL OR to_regclass('pg_catalog.pg_dist_placement') IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE 'SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_catalog.pg_dist_shard s
                                               JOIN pg_catalog.pg_dist_placement p USING (shardid)
                                              WHERE s.logicalrelid = $1 GROUP BY s.shardid) c'
        INTO copies USING rel;
    RETURN copies;
END
$$;

-- Whether webhook.distribute_registry() has made the copy a reference table.
CREATE FUNCTION webhook.registry_distributed() RETURNS boolean
LANGUAGE sql STABLE
RETURN webhook.citus_copies('webhook.registry_copy'::regclass) > 0;

-- Whether a relation is a Citus shard of a table (a trigger on a shard
-- fires for the table: webhook.emit_topic checks it is on the table its
-- topic names). A shard's name ends in _<shard id>: one index lookup.
CREATE FUNCTION webhook.citus_shard_of(shard regclass, rel regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found boolean;
    shard_id bigint := substring((SELECT c.relname FROM pg_class c WHERE c.oid = shard) FROM '_([0-9]{1,18})$')::bigint;
BEGIN
    IF shard_id IS NULL OR to_regclass('pg_catalog.pg_dist_shard') IS NULL THEN
        RETURN false;
    END IF;
    -- (shard_name qualified even in public; a partition's shard counts
    -- for its partitioned table.)
    EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_shard s
                             WHERE s.shardid = $3
                               AND (s.logicalrelid = $2 OR pg_catalog.pg_partition_root(s.logicalrelid) = $2)
                               AND pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid, false)) = $1)'
        INTO found USING shard, rel, shard_id;
    RETURN found;
END
$$;

-- The primary key of a registry row, as text.
CREATE FUNCTION webhook.registry_key(relname text, r json) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE relname WHEN 'settings' THEN 'singleton' WHEN 'topics' THEN r ->> 'topic' ELSE r ->> 'id' END;

-- BEFORE each statement on the registry tables, on a worker node: the
-- registry is changed on the coordinator. Let through (both marked in
-- process memory that no setting reaches, src/worker/node_state.rs): the
-- coordinator's rows the copy's trigger applies, and the extension's own
-- scripts (webhook.applying_registry()); the delivery worker's own writes
-- (webhook.writing_node_state(): an endpoint failing, disabled after
-- failing, a deleted webhook removed), which are this node's state.
CREATE FUNCTION webhook.registry_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- (The worker's own writes first: it runs this at every batch it records.)
    IF NOT webhook.writing_node_state() AND NOT webhook.applying_registry()
       AND webhook.citus_node_role() = 'worker' AND webhook.registry_distributed() THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('webhook.%s: the webhooks, topics and settings of a Citus cluster are changed on its coordinator', TG_TABLE_NAME),
            HINT = 'Connect to the coordinator and run the same call there; it reaches every node in its transaction.';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON webhook.settings
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.registry_guard();
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON webhook.topics
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.registry_guard();
CREATE TRIGGER registry_guard BEFORE INSERT OR UPDATE OR DELETE ON webhook.webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION webhook.registry_guard();

-- AFTER each row of the registry tables, on the coordinator: copies the
-- change (not the delivery worker's own writes, which are this node's
-- state, as on every node; an outcome callback's are copied).
CREATE FUNCTION webhook.registry_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_key text;
    new_key text;
    columns_set text[];
    intent text := '';
BEGIN
    IF webhook.writing_node_state() OR webhook.citus_node_role() <> 'coordinator'
       OR NOT webhook.registry_distributed() THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_key := webhook.registry_key(TG_TABLE_NAME, row_to_json(OLD));
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_key := webhook.registry_key(TG_TABLE_NAME, row_to_json(NEW));
    END IF;
    IF old_key IS DISTINCT FROM new_key AND old_key IS NOT NULL THEN
        DELETE FROM webhook.registry_copy c WHERE c.relname = TG_TABLE_NAME AND c.key = old_key;
    END IF;
    IF new_key IS NULL THEN
        RETURN NULL;
    END IF;
    -- A webhook's update: the columns it changed, and the enabled state
    -- whenever enable_webhook or disable_webhook ran (a node may have
    -- disabled the endpoint itself).
    IF TG_TABLE_NAME = 'webhooks' AND TG_OP = 'UPDATE' AND old_key = new_key THEN
        SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO columns_set
          FROM json_each_text(row_to_json(NEW)) n JOIN json_each_text(row_to_json(OLD)) o USING (key)
         WHERE n.value IS DISTINCT FROM o.value;
        intent := coalesce(current_setting('webhook.enabled_set_by', true), '');
        IF intent IN ('enable', 'enable_discarding_held', 'disable') THEN
            columns_set := columns_set || ARRAY['enabled', 'disabled_reason', 'disabled_at', 'failing_since'];
        END IF;
    END IF;
    INSERT INTO webhook.registry_copy AS c (relname, key, content, changed, discard_held)
    VALUES (TG_TABLE_NAME, new_key, row_to_json(NEW), columns_set, intent = 'enable_discarding_held')
        ON CONFLICT (relname, key) DO UPDATE
       SET content = EXCLUDED.content, changed = EXCLUDED.changed, discard_held = EXCLUDED.discard_held;
    RETURN NULL;
END
$$;
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE ON webhook.settings
    FOR EACH ROW EXECUTE FUNCTION webhook.registry_changed();
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE ON webhook.topics
    FOR EACH ROW EXECUTE FUNCTION webhook.registry_changed();
CREATE TRIGGER registry_changed AFTER INSERT OR UPDATE OR DELETE ON webhook.webhooks
    FOR EACH ROW EXECUTE FUNCTION webhook.registry_changed();

-- Webhooks the coordinator deleted, on this node: disabled and marked as
-- delete_webhook does when writers hold the row; this node's worker removes
-- them once those are done (a DELETE here would wait for them, and the
-- coordinator's transaction with it). Returns how many it marked.
CREATE FUNCTION webhook.delete_webhooks_here(ids text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    marked integer;
BEGIN
    UPDATE webhook.webhooks w
       SET enabled = false, deletion_requested_at = now(),
           disabled_reason = 'deleted on the Citus coordinator; removed here once the transactions queuing events for it end'
     WHERE w.id::text = ANY (ids) AND w.deletion_requested_at IS NULL;
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END
$$;

-- Applies one registry row to this node's table: inserted whole when the
-- node has no such row, else the columns `changed` names (all of them when
-- NULL; a webhook's others are this node's state). An existing webhook is
-- updated in place, never deleted and inserted again (its deliveries
-- would go); one being deleted is not made again. Column names come from
-- the catalog; generated columns are generated.
CREATE FUNCTION webhook.apply_registry_row(relname text, r json, changed text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    rel regclass := ('webhook.' || quote_ident(relname))::regclass;
    cols text;
    keys text;
    updated text;
    excluded text;
BEGIN
    IF relname = 'webhooks' AND r ->> 'deletion_requested_at' IS NOT NULL
       AND NOT EXISTS (SELECT FROM webhook.webhooks w WHERE w.id::text = r ->> 'id') THEN
        RETURN;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
    SELECT string_agg(quote_ident(a.attname), ', ') INTO keys
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = rel AND i.indisprimary;
    -- The key stays as it is (an identity column cannot be updated).
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg('EXCLUDED.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO updated, excluded
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity = ''
       AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = rel AND i.indisprimary AND a.attnum = ANY (i.indkey))
       AND (changed IS NULL OR relname <> 'webhooks' OR a.attname::text = ANY (changed));
    IF updated IS NULL THEN
        EXECUTE format('INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM json_populate_record(NULL::%s, $1) '
                       'ON CONFLICT (%s) DO NOTHING', rel, cols, cols, rel, keys)
            USING r;
    ELSE
        EXECUTE format('INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM json_populate_record(NULL::%s, $1) '
                       'ON CONFLICT (%s) DO UPDATE SET (%s) = ROW(%s)',
                       rel, cols, cols, rel, keys, updated, excluded)
            USING r;
    END IF;
END
$$;

-- The copy's trigger, on each node's placement (a worker node's; the
-- coordinator is where the row came from).
CREATE FUNCTION webhook.registry_copy_applied() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF webhook.citus_node_role() <> 'worker' THEN
        RETURN NULL;
    END IF;
    -- The registry guard lets this transaction's registry writes through.
    PERFORM webhook.begin_registry_apply();
    -- A row gone from the coordinator. (Its settings row is only ever
    -- replaced: the insert that follows replaces this node's.)
    IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR OLD.key <> NEW.key OR OLD.relname <> NEW.relname) THEN
        IF OLD.relname = 'webhooks' THEN
            PERFORM webhook.delete_webhooks_here(ARRAY[OLD.key]);
        ELSIF OLD.relname = 'topics' THEN
            DELETE FROM webhook.topics t WHERE t.topic = OLD.key;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.relname = 'webhooks' AND NEW.discard_held THEN
            DELETE FROM webhook.deliveries d WHERE d.webhook_id::text = NEW.key AND d.status = 'held';
        END IF;
        PERFORM webhook.apply_registry_row(NEW.relname, NEW.content, NEW.changed);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER registry_copy_applied AFTER INSERT OR UPDATE OR DELETE ON webhook.registry_copy
    FOR EACH ROW EXECUTE FUNCTION webhook.registry_copy_applied();

-- Run by a worker node's delivery worker when it starts and once a
-- minute: brings the node's registry level with the copy where Citus gave
-- the node its placement without the trigger firing (the placement of a
-- node added later is copied before its triggers exist). Settings and
-- topics are made equal to the copy; a webhook missing here is added, one
-- the copy no longer has (or has as being deleted) is removed as
-- delete_webhook does; a webhook's other columns are this node's state.
-- The registry tables are locked first, so no change of the coordinator's
-- commits here between reading the copy and acting on it; timeouts keep
-- a stuck lock or an unreachable node from holding up the worker.
-- Returns how many rows it changed.
CREATE FUNCTION webhook.sync_registry() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '5s' SET statement_timeout = '30s' AS $$
DECLARE
    c record;
    changed integer := 0;
    removed integer;
    filled boolean := false;
    topic_keys text[] := '{}';
    webhook_keys text[] := '{}';
BEGIN
    IF webhook.citus_node_role() <> 'worker' OR NOT webhook.registry_distributed() THEN
        RETURN 0;
    END IF;
    LOCK TABLE webhook.settings, webhook.topics, webhook.webhooks IN SHARE ROW EXCLUSIVE MODE;
    FOR c IN SELECT r.relname, r.key, r.content FROM webhook.registry_copy r LOOP
        IF c.relname = 'webhooks' THEN
            CONTINUE WHEN c.content ->> 'deletion_requested_at' IS NOT NULL;
            webhook_keys := webhook_keys || c.key;
            CONTINUE WHEN EXISTS (SELECT FROM webhook.webhooks w WHERE w.id::text = c.key);
        ELSIF c.relname = 'topics' THEN
            topic_keys := topic_keys || c.key;
            CONTINUE WHEN (SELECT row_to_json(t)::text FROM webhook.topics t WHERE t.topic = c.key) = c.content::text;
        ELSE
            filled := true;
            CONTINUE WHEN (SELECT (s.enabled, s.tenant_id) FROM webhook.settings s)
                        = (SELECT (r.enabled, r.tenant_id) FROM json_populate_record(NULL::webhook.settings, c.content) r);
        END IF;
        PERFORM webhook.apply_registry_row(c.relname, c.content);
        changed := changed + 1;
    END LOOP;
    -- What the copy no longer has (once it has been filled: its settings
    -- row is always there).
    IF NOT filled THEN
        RETURN changed;
    END IF;
    DELETE FROM webhook.topics t WHERE t.topic <> ALL (topic_keys);
    GET DIAGNOSTICS removed = ROW_COUNT;
    changed := changed + removed;
    RETURN changed + webhook.delete_webhooks_here(
        ARRAY(SELECT w.id::text FROM webhook.webhooks w WHERE w.id::text <> ALL (webhook_keys)));
END
$$;

-- Run once by a superuser on the coordinator, after CREATE EXTENSION and
-- the citus_add_node calls: makes the copy a reference table, fills it
-- with this node's registry (every worker node applies it), and brings
-- every node's registry level with it. Run again after citus_add_node,
-- before any shard moves there: the new node gets its placement of the
-- copy and its registry. Returns the number of rows copied.
CREATE FUNCTION webhook.distribute_registry() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    copied bigint;
    topic_keys text[];
    webhook_keys text[];
BEGIN
    IF webhook.citus_node_role() <> 'coordinator' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'distribute_registry: this database is not a Citus coordinator',
            HINT = 'Run it on the coordinator after CREATE EXTENSION citus, citus_add_node and CREATE EXTENSION webhook_emitter.';
    END IF;
    IF NOT webhook.registry_distributed() THEN
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
        EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING 'webhook.registry_copy'::regclass;
    END IF;
    -- A node added since has no placement of the copy until this.
    EXECUTE 'SELECT pg_catalog.replicate_reference_tables(''block_writes'')';
    -- Every row anew: an upsert of the same row still reaches every
    -- placement, so a node added since is brought level. (Deleting and
    -- inserting again would delete each webhook, and its deliveries, on
    -- the worker nodes.)
    -- (A webhook a node has keeps its columns there: changed = '{}'.)
    INSERT INTO webhook.registry_copy AS c (relname, key, content, changed)
    SELECT 'settings', 'singleton', row_to_json(s), NULL::text[] FROM webhook.settings s
    UNION ALL SELECT 'topics', t.topic, row_to_json(t), NULL FROM webhook.topics t
    UNION ALL SELECT 'webhooks', w.id::text, row_to_json(w), '{}'::text[] FROM webhook.webhooks w
               WHERE w.deletion_requested_at IS NULL
    ON CONFLICT (relname, key) DO UPDATE
       SET content = EXCLUDED.content, changed = EXCLUDED.changed, discard_held = false;
    GET DIAGNOSTICS copied = ROW_COUNT;
    -- Rows whose origin is gone (keys first: Citus joins no reference
    -- table with a local one here).
    topic_keys := ARRAY(SELECT t.topic FROM webhook.topics t);
    webhook_keys := ARRAY(SELECT w.id::text FROM webhook.webhooks w WHERE w.deletion_requested_at IS NULL);
    DELETE FROM webhook.registry_copy c
     WHERE (c.relname = 'topics' AND c.key <> ALL (topic_keys))
        OR (c.relname = 'webhooks' AND c.key <> ALL (webhook_keys));
    RETURN copied;
END
$$;
COMMENT ON FUNCTION webhook.distribute_registry() IS 'Citus: copy the registry (webhooks, topics, settings) to every node, and keep it copied; run on the coordinator after adding nodes.';

-- The log of every node, asked on the coordinator: one view's rows per
-- node (at most max_rows each), as jsonb. Citus's run_command_on_all_nodes
-- runs the query on each node as the caller, so each node checks the
-- caller's rights as it would locally; the view is one of the log's, its
-- name taken from the catalog.
CREATE FUNCTION webhook.cluster_rows(log_view regclass, max_rows integer DEFAULT 1000)
RETURNS TABLE (nodeid integer, entry jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    node record;
BEGIN
    IF webhook.citus_node_role() <> 'coordinator' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'cluster_rows: this database is not a Citus coordinator',
            HINT = 'On a single server, read the view itself.';
    END IF;
    IF log_view IS NULL OR log_view NOT IN ('webhook.webhook_health'::regclass, 'webhook.recent_failures'::regclass,
            'webhook.delivery_latency'::regclass, 'webhook.delivery_stats'::regclass,
            'webhook.delivery_counters'::regclass, 'webhook.webhook_list'::regclass) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('log_view: %s is not one of the log''s views; allowed: webhook.webhook_health, webhook.recent_failures, webhook.delivery_latency, webhook.delivery_stats, webhook.delivery_counters, webhook.webhook_list', coalesce(log_view::text, 'NULL'));
    END IF;
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('max_rows: %s is out of range; allowed: 1 to 100000 rows per node', coalesce(max_rows::text, 'NULL'));
    END IF;
    FOR node IN EXECUTE 'SELECT n.nodeid, n.success, n.result FROM pg_catalog.run_command_on_all_nodes($1) n ORDER BY n.nodeid'
        -- Every name qualified: the command runs on each node under the
        -- caller's own search_path.
        USING format('SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(v)), ''[]''::pg_catalog.jsonb) '
                     'FROM (SELECT * FROM %s LIMIT %s) v', log_view, max_rows)
    LOOP
        IF NOT node.success THEN
            RAISE EXCEPTION USING ERRCODE = 'external_routine_exception',
                MESSAGE = format('cluster_rows: node %s answered: %s', node.nodeid, node.result);
        END IF;
        RETURN QUERY SELECT node.nodeid, r FROM jsonb_array_elements(node.result::jsonb) r;
    END LOOP;
END
$$;
COMMENT ON FUNCTION webhook.cluster_rows IS 'Citus: the rows of one log view (webhook_health, recent_failures, ...) on every node, read on the coordinator as the caller.';

-- webhook.metrics() of every node in one Prometheus text: each sample
-- labelled node="<nodeid>", each family's samples together under one
-- HELP and TYPE.
CREATE FUNCTION webhook.cluster_metrics() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    node record;
    line text;
    family text;
    families text[] := '{}';
    heads jsonb := '{}';
    samples jsonb := '{}';
BEGIN
    IF webhook.citus_node_role() <> 'coordinator' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'cluster_metrics: this database is not a Citus coordinator',
            HINT = 'On a single server, use webhook.metrics().';
    END IF;
    FOR node IN EXECUTE 'SELECT n.nodeid, n.success, n.result FROM pg_catalog.run_command_on_all_nodes($1) n ORDER BY n.nodeid'
        USING 'SELECT webhook.metrics()'  -- qualified: run under the caller's search_path
    LOOP
        IF NOT node.success THEN
            RAISE EXCEPTION USING ERRCODE = 'external_routine_exception',
                MESSAGE = format('cluster_metrics: node %s answered: %s', node.nodeid, node.result);
        END IF;
        family := NULL;
        FOREACH line IN ARRAY string_to_array(node.result, E'\n') LOOP
            CONTINUE WHEN line = '';
            IF line ~ '^# (HELP|TYPE) ' THEN
                family := split_part(line, ' ', 3);
                IF NOT family = ANY (families) THEN
                    families := families || family;
                    heads := heads || jsonb_build_object(family, '');
                END IF;
                IF position(line IN heads ->> family) = 0 THEN
                    heads := jsonb_set(heads, ARRAY[family], to_jsonb((heads ->> family) || line || E'\n'));
                END IF;
            ELSIF family IS NOT NULL THEN
                line := CASE WHEN position('{' IN line) > 0
                             THEN regexp_replace(line, '\{', format('{node="%s",', node.nodeid))
                             ELSE regexp_replace(line, '^(\S+) ', format('\1{node="%s"} ', node.nodeid)) END;
                samples := samples || jsonb_build_object(family, coalesce(samples ->> family, '') || line || E'\n');
            END IF;
        END LOOP;
    END LOOP;
    RETURN coalesce((SELECT string_agg((heads ->> f) || coalesce(samples ->> f, ''), '' ORDER BY o)
                       FROM unnest(families) WITH ORDINALITY u(f, o)), '');
END
$$;
COMMENT ON FUNCTION webhook.cluster_metrics() IS 'Citus: webhook.metrics() of every node, labelled node="<nodeid>", read on the coordinator as the caller.';

REVOKE ALL ON webhook.registry_copy FROM PUBLIC;
REVOKE ALL ON FUNCTION webhook.citus_node_role(), webhook.registry_distributed(), webhook.registry_key(text, json),
    webhook.citus_shard_of(regclass, regclass), webhook.citus_copies(regclass),
    webhook.writing_node_state(), webhook.applying_registry(), webhook.begin_registry_apply(),
    webhook.registry_guard(), webhook.registry_changed(), webhook.registry_copy_applied(),
    webhook.apply_registry_row(text, json, text[]), webhook.delete_webhooks_here(text[]), webhook.sync_registry(),
    webhook.distribute_registry(), webhook.cluster_rows(regclass, integer), webhook.cluster_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhook.registry_distributed(), webhook.registry_key(text, json),
    webhook.citus_copies(regclass) TO webhook_admin;
GRANT EXECUTE ON FUNCTION webhook.cluster_rows(regclass, integer), webhook.cluster_metrics(), webhook.citus_node_role(),
    webhook.citus_shard_of(regclass, regclass), webhook.writing_node_state(), webhook.applying_registry()
    TO PUBLIC, webhook_admin;

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

-- Repair ---------------------------------------------------------------------

-- Every topic anew: triggers that call webhook.emit_topic, and a generated
-- function the extension owner owns, not SECURITY DEFINER. 0.2.0 made a
-- custom topic's function its definer's, who could alter it: it is dropped
-- (as is one squatted under a generated name) and made again. A custom
-- topic's function is the installation's (dumped), not the extension's.
DO $repair$
DECLARE
    t record;
    g record;
    fn regprocedure;
    op text;
    prefix text;
    enabled_as jsonb;
BEGIN
    -- Generated names hash the builder's name as define_topic prints it.
    PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR t IN SELECT c.topic, c.trigger_function, c.definer, c.source_table, c.operations
               FROM webhook.topics c ORDER BY c.topic LOOP
        -- 0.2.0's names: 'webhook <topic> <operation>', '<topic> <hash>'.
        -- Its triggers are found by the function they call (their table
        -- may have been renamed) or by name on the topic's table, and how
        -- each was enabled (ENABLE ALWAYS on a logical replication
        -- subscriber) is kept for the trigger that replaces it.
        fn := to_regprocedure(format('webhook_triggers.%I()', t.trigger_function));
        prefix := 'webhook ' || left(t.topic, 46) || ' ';
        enabled_as := '{}';
        FOR g IN SELECT x.tgrelid::regclass AS rel, x.tgname, x.tgenabled FROM pg_trigger x
                  WHERE NOT x.tgisinternal
                    AND ((fn IS NOT NULL AND x.tgfoid = fn)
                         OR (x.tgrelid = to_regclass(t.source_table) AND left(x.tgname, length(prefix)) = prefix
                             AND substr(x.tgname, length(prefix) + 1) IN ('insert', 'update', 'delete')))
        LOOP
            IF left(g.tgname, length(prefix)) = prefix THEN
                enabled_as := enabled_as || jsonb_build_object(substr(g.tgname, length(prefix) + 1), g.tgenabled::text);
            END IF;
            EXECUTE format('DROP TRIGGER %I ON %s', g.tgname, g.rel);
        END LOOP;
        IF fn IS NOT NULL THEN
            EXECUTE format('DROP FUNCTION %s', fn);
        END IF;
        UPDATE webhook.topics c SET trigger_function = webhook.topic_function_name(c) WHERE c.topic = t.topic;
        -- An unverified row is not installed: its table may not be the one
        -- it was defined on, nor its definer's to trigger on.
        CONTINUE WHEN t.definer = 'webhook_admin'::regrole;
        PERFORM webhook.install_topic(t.topic);
        IF NOT (SELECT c.builtin FROM webhook.topics c WHERE c.topic = t.topic) THEN
            EXECUTE format('ALTER EXTENSION webhook_emitter DROP FUNCTION webhook_triggers.%I()',
                           (SELECT c.trigger_function FROM webhook.topics c WHERE c.topic = t.topic));
        END IF;
        FOR op IN SELECT k FROM jsonb_object_keys(enabled_as) k WHERE enabled_as ->> k <> 'O' LOOP
            CONTINUE WHEN to_regclass(t.source_table) IS NULL
                OR NOT EXISTS (SELECT FROM pg_trigger x WHERE x.tgrelid = to_regclass(t.source_table)
                                  AND x.tgname = webhook.topic_trigger_name(t.topic, op));
            EXECUTE format('ALTER TABLE %s %s TRIGGER %I', to_regclass(t.source_table),
                           CASE enabled_as ->> op WHEN 'A' THEN 'ENABLE ALWAYS' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'DISABLE' END,
                           webhook.topic_trigger_name(t.topic, op));
        END LOOP;
    END LOOP;
    FOR t IN SELECT c.topic FROM webhook.topics c WHERE c.definer = 'webhook_admin'::regrole ORDER BY 1 LOOP
        RAISE WARNING 'topic %: its row could not be verified against what defined it (webhook_admin could edit webhook.topics in 0.2.0); it emits nothing until it is redefined', t.topic
            USING HINT = 'Redefine it (webhook.define_topic(..., replace => true) or webhook.watch) as the role it should run as.';
    END LOOP;
    FOR t IN SELECT c.topic, c.builder FROM webhook.topics c JOIN pg_proc p ON p.oid = c.builder
              WHERE NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = p.proowner) AND p.proowner <> c.definer
              ORDER BY 1 LOOP
        RAISE WARNING 'topic %: its builder % belongs to another role than its definer; the topic does not fire until it is redefined', t.topic, t.builder;
    END LOOP;
    FOR t IN SELECT c.topic, k.oid::regclass AS rel FROM webhook.topics c
               JOIN pg_class k ON k.oid = to_regclass(c.source_table)
               JOIN pg_namespace n ON n.oid = k.relnamespace
              WHERE (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.definer)
                AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = k.relowner)
              ORDER BY 1 LOOP
        RAISE WARNING 'topic %: it runs as a superuser over %, which a role without superuser owns and could change', t.topic, t.rel
            USING HINT = 'Redefine it as a webhook_admin member (docs/security.md), or give the table to a superuser.';
    END LOOP;
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
               WHERE p.pronamespace = 'webhook_triggers'::regnamespace
                 AND p.proowner <> (SELECT e.extowner FROM pg_extension e WHERE e.extname = 'webhook_emitter') LOOP
        RAISE WARNING '%: owned by %, not by the extension owner, and not used by any topic', fn,
            (SELECT p.proowner::regrole FROM pg_proc p WHERE p.oid = fn)
            USING HINT = 'Nobody but the extension may create in webhook_triggers since 0.3.0: inspect it and drop it.';
    END LOOP;
END
$repair$;
DROP TABLE webhook.upgrade_0_3_0_topics, webhook.upgrade_0_3_0_documented;

-- The documented topics' event schemas, tightened by hand (sql/lms/topics/schemas.sql).
WITH rule(topics, path, keywords) AS (VALUES
    ('^(course|bundle|test)\.', '*.payment_type', '{"enum": ["free", "paid"]}'),
    ('^test\.', '*.scoring_type', '{"enum": ["adaptive", "standard", "partial credit"]}'),
    ('^test\.completed$', '*.manual_scoring', '{"type": ["string", "null"], "enum": ["pending", "completed", null]}'),
    ('^live_class\.', '*.class_type', '{"enum": ["One-time", "recurring"]}'),
    ('^live_class\.enrollment$', '*.enrollment_status', '{"enum": ["Active", "Waitlisted", "Cancelled"]}'),
    ('^product\.', '*.product_type', '{"enum": ["Physical product", "Digital product"]}'),
    ('^product\.', '*.shipping_option', '{"enum": ["None", "Shipping", "Pickup", "Both"]}'),
    ('^(order|payment)\.', 'line_items[].product_type', '{"enum": ["course", "assessment", "bundle", "live_class", "product"]}'),
    ('^(order|payment)\.', 'status', '{"enum": ["PENDING", "COMPLETED", "FAILED", "REFUNDED"]}'),
    ('^(order|payment)\.', 'transaction_ref', '{"type": ["string", "null"]}'),
    ('^assignment\.(evaluated|rejected)$', 'status', '{"enum": ["submitted", "evaluated", "rejected"]}'),
    ('^user\.', '*.avatar_url', '{"type": ["string", "null"]}')
)
UPDATE webhook.topics t SET schema_overrides = r.overrides
  FROM (SELECT tp.topic, jsonb_object_agg(rule.path, rule.keywords::jsonb) AS overrides
          FROM webhook.topics tp JOIN rule ON tp.topic ~ rule.topics
         WHERE tp.builtin
         GROUP BY tp.topic) r
 WHERE t.topic = r.topic;

-- The 0.2.0 log tables, copied into the slots (see "the log in slots"),
-- go; recent_failures (unchanged) is the one view still reading them.
CREATE OR REPLACE VIEW webhook.recent_failures AS
SELECT d.id AS delivery_id, d.webhook_id, w.name AS webhook_name, e.topic, d.event_id, d.status,
       d.attempts, d.last_status_code, d.last_error, d.last_attempt_at, d.next_attempt_at
FROM webhook.deliveries d
JOIN webhook.events e ON e.id = d.event_id AND e.slot = d.slot  -- a delivery is in its event's slot
LEFT JOIN webhook.webhooks w ON w.id = d.webhook_id
WHERE d.status IN ('failed', 'dead') AND d.last_attempt_at > now() - interval '24 hours'
ORDER BY d.last_attempt_at DESC;
-- Out of the extension first, which also takes them (and their
-- sequences) off the list of tables pg_dump dumps (pg_extension.extconfig).
ALTER EXTENSION webhook_emitter DROP TABLE webhook.attempts_v020;
ALTER EXTENSION webhook_emitter DROP TABLE webhook.deliveries_v020;
ALTER EXTENSION webhook_emitter DROP TABLE webhook.events_v020;
ALTER EXTENSION webhook_emitter DROP SEQUENCE webhook.attempts_v020_id_seq;
ALTER EXTENSION webhook_emitter DROP SEQUENCE webhook.deliveries_v020_id_seq;
DROP TABLE webhook.attempts_v020, webhook.deliveries_v020, webhook.events_v020;

-- The delivery log kept, summed per webhook and hour (webhook.delivery_stats).
SELECT webhook.rebuild_delivery_stats();

-- Backends with the new library cached how to queue before the fan-out
-- existed: they read it again.
UPDATE webhook.settings SET enabled = enabled;
