-- webhook_emitter: the engine's state: every table, sequence and index,
-- the settings row, and what pg_dump keeps. The code that works on them
-- (functions, triggers, views) is in the other files of sql/engine/;
-- the LMS application (schema lms, the documented topics) in sql/lms/.
-- Loaded first by CREATE EXTENSION into schema "webhook".

-- Who may manage webhooks: members of webhook_admin. Created once per cluster.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'webhook_admin') THEN
        CREATE ROLE webhook_admin NOLOGIN;
    END IF;
END
$$;

-- Installation-wide settings: exactly one row.
CREATE TABLE webhook.settings (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    enabled    boolean NOT NULL DEFAULT true,   -- the global on/off switch
    tenant_id  text    NOT NULL DEFAULT 'default'
               CHECK (tenant_id <> '' AND length(tenant_id) <= 200),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE webhook.settings IS 'Installation-wide switch (enabled) and the tenant id sent as tenant_id/domain_id.';
INSERT INTO webhook.settings DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('webhook.settings', '');

-- The topics subscribers choose from. Each row is a topic's definition:
-- which writes on which table emit it and how its body is built (see
-- topics.sql). The documented LMS topics come with the extension
-- (builtin, sql/lms/topics/*.sql); webhook.define_topic and webhook.watch add
-- more.
CREATE TABLE webhook.topics (
    topic        text PRIMARY KEY,
    display_name text NOT NULL,
    description  text NOT NULL,
    source       text NOT NULL CONSTRAINT topics_source_check
                 CHECK (source IN ('braincert', 'aom', 'custom')),  -- the document defining the body
    resource     text,          -- BrainCert envelope "resource"
    action       text,          -- BrainCert envelope "action"
    sample_body  json NOT NULL, -- a realistic body, as delivered (Send Test)
    -- Added in 0.2.0: the definition (sql/engine/topics.sql).
    envelope         text NOT NULL DEFAULT 'flat'
                     CONSTRAINT topics_envelope_kind_check CHECK (envelope IN ('braincert', 'flat')),
    source_table     text NOT NULL,    -- schema.table, quoted as needed
    operations       text[] NOT NULL
                     CONSTRAINT topics_operations_check
                     CHECK (cardinality(operations) > 0 AND operations <@ ARRAY['insert', 'update', 'delete']),
    columns          text[],           -- update: only a change of one of these fires
    condition        text,             -- a trigger WHEN expression over NEW / OLD
    timing           text NOT NULL
                     CONSTRAINT topics_timing_check CHECK (timing IN ('commit', 'before_delete', 'statement', 'row')),
    builder          regprocedure,     -- key (or key[] per statement) -> json; NULL for row events
    key_column       text,             -- the source table's primary key column
    exclude_columns  text[],           -- row events: columns that never leave the database
    trigger_function text NOT NULL,    -- its generated function in schema webhook_triggers
    builtin          boolean NOT NULL DEFAULT false,  -- shipped with the extension (not dumped)
    -- Added in 0.3.0: whose rights the topic's code runs with (the role
    -- that defined it; the extension owner for the documented topics).
    definer          regrole NOT NULL,
    -- What a builder that raises does to the write: 'queue' lets it commit
    -- and queues the event unbuilt (webhook.rebuild_events), 'refuse'
    -- fails it.
    on_builder_error text NOT NULL DEFAULT 'queue'
                     CONSTRAINT topics_on_builder_error_check CHECK (on_builder_error IN ('queue', 'refuse')),
    -- The event catalog (src/catalog): hand tightening of the schema inferred
    -- from the sample body (path -> JSON Schema keywords), and the schema
    -- itself, JSON Schema draft 2020-12, always that of the current sample.
    schema_overrides jsonb,
    event_schema     jsonb GENERATED ALWAYS AS
                     (webhook.infer_event_schema(topic, display_name, description, sample_body, schema_overrides)) STORED,
    CONSTRAINT topics_envelope_check
        CHECK ((envelope = 'braincert') = (resource IS NOT NULL AND action IS NOT NULL)),
    CONSTRAINT topics_builder_check CHECK ((builder IS NULL) = (timing = 'row'))
);
COMMENT ON TABLE webhook.topics IS 'Topics and their definitions (which writes emit them, how the body is built); change them with webhook.define_topic, drop_topic, watch, unwatch.';

CREATE TABLE webhook.webhooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text    NOT NULL,
    url             text    NOT NULL,
    description     text,
    topics          text[]  NOT NULL,
    content_type    text    NOT NULL DEFAULT 'application/json',
    auth_username   text,
    auth_password   text,
    body_template   text,
    enabled         boolean NOT NULL DEFAULT true,
    signing_secret  text,
    headers         jsonb   NOT NULL DEFAULT '{}',
    timeout_ms      integer,
    disabled_reason text,
    disabled_at     timestamptz,
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Added in 0.2.0 (after the 0.1.0 columns, as ALTER TABLE puts them).
    previous_signing_secret       text,        -- still signed with until ..._until
    previous_signing_secret_until timestamptz,
    bearer_token                  text,
    rate_limit_per_second         integer,
    ordering                      text NOT NULL DEFAULT 'none'
                                  CONSTRAINT webhooks_ordering_check CHECK (ordering IN ('none', 'fifo', 'per_key')),
    ordering_key                  text,        -- dotted path into the body, for per_key
    client_certificate            text,        -- PEM chain presented for mTLS
    client_key                    text,        -- PEM private key (a secret)
    oauth2_token_url              text,
    oauth2_client_id              text,
    oauth2_client_secret          text,        -- a secret
    oauth2_scope                  text,
    filter                        jsonb,       -- only events whose body contains it (@>)
    -- Added in 0.3.0: delete_webhook could not remove it at once (writers
    -- still queuing for it); the worker removes it after them.
    deletion_requested_at         timestamptz,
    -- Added in 0.3.0: the outcome callback (webhook.outcomes): a function of
    -- one jsonb argument the worker calls when a delivery ends, as the role
    -- that set it (never a superuser); also on every failed attempt when
    -- callback_on_failure.
    outcome_callback              regprocedure,
    outcome_callback_owner        regrole,
    callback_on_failure           boolean NOT NULL DEFAULT false
);
-- Names are unique among the webhooks not being deleted, through a
-- partial index, which PostgreSQL does not count as a key: changing a
-- webhook then takes no lock that waits for the writers whose events are
-- being queued for it (enqueue locks the webhook FOR KEY SHARE).
CREATE UNIQUE INDEX webhooks_name_key ON webhook.webhooks (name) WHERE deletion_requested_at IS NULL;
COMMENT ON TABLE webhook.webhooks IS 'Registered endpoints. Passwords and signing secrets are readable only by webhook_admin; others use webhook.webhook_list.';
CREATE INDEX webhooks_topics_idx ON webhook.webhooks USING gin (topics);
SELECT pg_catalog.pg_extension_config_dump('webhook.webhooks', '');
SELECT pg_catalog.pg_extension_config_dump('webhook.webhooks_id_seq', '');

SELECT pg_catalog.pg_extension_config_dump('webhook.topics', 'WHERE NOT builtin');

-- Generated trigger functions of the topics (see topics.sql).
CREATE SCHEMA webhook_triggers;
COMMENT ON SCHEMA webhook_triggers IS 'Trigger functions generated from webhook.topics; redefine the topic rather than editing them.';

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
    drained_at timestamptz,  -- set by the first call after the move committed
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

-- One row per event, stored once however many webhooks receive it.
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
CREATE INDEX events_unbuilt_idx ON webhook.events (topic) WHERE build_error IS NOT NULL;
-- The fan-out finds new events by transaction id: one small index, the
-- only one besides the primary key on the write path's table.
CREATE INDEX events_fanout_idx ON webhook.events (txid, id) WHERE txid IS NOT NULL;
-- No index on created_at: ids are ULIDs, ordered by creation time, so
-- pruning finds old events through the primary key.
COMMENT ON TABLE webhook.events IS 'Queued events; the body is the document delivered (before per-webhook rendering).';

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

-- One row per (event, webhook): the delivery log. A delivery of a disabled
-- webhook is "held": kept, not sent, until the webhook is enabled again.
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
COMMENT ON TABLE webhook.deliveries IS 'One row per event and webhook: status pending/delivering/delivered/failed/dead, held while the webhook is disabled, unbuilt while its builder fails (webhook.rebuild_events), replicated when it came by logical replication (never sent here).';

-- One row per HTTP attempt.
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
CREATE INDEX attempts_delivery_idx ON webhook.attempts (delivery_id);
-- One webhook's failures over a time range; only failed attempts pay for it.
CREATE INDEX attempts_failures_idx ON webhook.attempts (webhook_id, started_at)
    WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299;
COMMENT ON TABLE webhook.attempts IS 'Every HTTP attempt: timing, status code, response excerpt, error.';

-- The queue is the installation's data: pg_dump dumps it (and the identity
-- sequences), so a restore keeps pending deliveries and their event bodies.
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

-- Delivery counters for webhook.metrics() (see metrics.sql): counters must
-- only go up while the delivery log is pruned.
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
