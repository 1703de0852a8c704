-- webhook_emitter on Citus (README, "Citus"): the registry on every node.
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
