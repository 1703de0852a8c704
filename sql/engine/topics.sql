-- webhook_emitter: topics are data. A row of webhook.topics says which writes
-- on which table emit the topic, when its body is built and by which
-- builder; webhook.define_topic validates a definition and generates its
-- trigger function (schema webhook_triggers) and triggers from it. The
-- documented LMS topics (sql/lms/topics/*.sql) and webhook.watch use the same
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
-- Who may define topics: webhook_admin (and superusers). Every change goes
-- through webhook.change_topic (Rust, src/write/definer.rs): it records the
-- caller as the topic's definer and makes the change as the extension
-- owner, who alone creates and owns what is generated (nobody else may
-- create in webhook_triggers). change_topic_as_owner checks what the
-- definer may do: the TRIGGER privilege on the table, SELECT where the body
-- carries the row, EXECUTE on the builder. The triggers call
-- webhook.emit_topic(topic), which runs the generated function as the
-- definer: a builder never runs with more rights than its definer has, and
-- the definer owns nothing it could alter to run as someone else.
-- Identifiers in the generated SQL come from the system catalog (the
-- table's oid, quoted by regclass), never from the stored text.

-- The function of every generated trigger (its argument: the topic).
CREATE FUNCTION webhook.emit_topic() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'emit_topic';
COMMENT ON FUNCTION webhook.emit_topic() IS 'Runs a topic''s generated trigger function as the topic''s definer (the triggers of webhook.topics call it).';

-- Generated names: plain identifiers (lower-case letters, digits and _),
-- so that whatever carries them as DDL needs no quoting (pg_dump; Citus
-- propagating a GRANT or a trigger to its nodes); readable, unique per
-- topic (the hash: topics differing only in case or punctuation) and per
-- definition, within the 63 bytes of an identifier. The topic's own name
-- is in webhook.topics.
CREATE FUNCTION webhook.topic_trigger_name(topic text, operation text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 'webhook_' || left(regexp_replace(lower(topic), '[^a-z0-9]+', '_', 'g'), 40) || '_' || operation
       || '_' || left(md5(topic), 6);

-- STABLE: the builder's name is read under the caller's search_path
-- (pinned by every caller).
CREATE FUNCTION webhook.topic_function_name(d webhook.topics) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN 'emit_' || left(regexp_replace(lower(d.topic), '[^a-z0-9]+', '_', 'g'), 45) || '_'
       || left(md5(concat_ws('|', d.topic, d.source_table, d.operations::text, d.columns::text, d.condition,
                             d.timing, d.builder::text, d.key_column, d.exclude_columns::text)), 8);

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
CREATE FUNCTION webhook.topic_trigger_source(d webhook.topics) RETURNS text
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

-- (Re)creates a definition's trigger function and, when its table exists,
-- its triggers. During a restore the table does not exist yet when
-- CREATE EXTENSION runs: the dump brings the table with its triggers.
CREATE FUNCTION webhook.install_topic(topic text) RETURNS void
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
CREATE FUNCTION webhook.uninstall_topic(topic text) RETURNS void
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

-- A definition's builder, proven as the caller (its definer) before it is
-- accepted: a builder that fails at every write would fail (or, by
-- default, queue unbuilt) every event of the topic. It runs on an existing
-- row of the table as the generated function runs it (search_path =
-- pg_catalog, pg_temp, the builder's own SET clauses), in a block that is
-- always rolled back; on an empty table its body is at least parsed and
-- resolved by its language's validator under the same settings.
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

-- The entry of define_topic and watch, as the caller: webhook.change_topic
-- stores the definition as the extension owner, the caller its definer.
-- documented: the extension's own scripts, which run as the extension
-- owner (store_topic is its alone).
CREATE FUNCTION webhook.save_topic(d webhook.topics, replace boolean, documented boolean DEFAULT false)
RETURNS webhook.topics
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF documented THEN
        RETURN webhook.store_topic(d, replace, true);
    END IF;
    RETURN json_populate_record(NULL::webhook.topics, webhook.change_topic('save', row_to_json(d), replace));
END
$$;

-- Keys a row of webhook.topics from define_topic's arguments. A new topic
-- gets the defaults; with replace => true an existing one keeps every
-- argument that is not given (NULL): rebinding a topic to another table or
-- builder leaves its operations, columns, condition, timing and catalog
-- entry as they were. columns => '{}' and condition => '' remove them.
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

-- The documented LMS topics (sql/lms/topics/*.sql) are defined through this.
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
BEGIN
    PERFORM webhook.change_topic('drop', json_build_object('topic', topic), false);
END
$$;
COMMENT ON FUNCTION webhook.drop_topic IS 'Drop a topic defined with define_topic or watch, with its triggers; refused while a webhook subscribes to it.';

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
-- Also for a logical replication subscriber's initial copy (which has the
-- documented topics of its own CREATE EXTENSION).
ALTER TABLE webhook.topics ENABLE ALWAYS TRIGGER topics_replace_row;

-- The topic reference in Markdown, generated from the definitions (the
-- documented ones are docs/topics.md; a test keeps the two the same).
CREATE FUNCTION webhook.topic_reference() RETURNS text
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

-- A topic's event schema (JSON Schema draft 2020-12; src/catalog): the
-- generated column webhook.topics.event_schema. The OpenAPI document of
-- every topic is webhook.event_catalog().
CREATE FUNCTION webhook.event_schema(topic text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT t.event_schema FROM webhook.topics t WHERE t.topic = event_schema.topic);
COMMENT ON FUNCTION webhook.event_schema(text) IS 'The JSON Schema (draft 2020-12) of a topic''s body; webhook.event_catalog() gives every topic as one OpenAPI 3.1 document.';

