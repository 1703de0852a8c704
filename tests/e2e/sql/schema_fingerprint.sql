-- One row per object of the extension (and of schemas webhook and lms),
-- with everything that defines it: upgraded and fresh installs must give
-- the same set of rows. ACL items are sorted: GRANT order is not meaning.
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'webhook_emitter'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
rels AS (
    SELECT c.oid, c.relkind, (c.oid IN (SELECT objid FROM members)) AS member
      FROM pg_class c
     WHERE c.relnamespace IN ('webhook'::regnamespace, 'lms'::regnamespace)
       AND c.relkind IN ('r', 'v', 'S', 'm', 'p')
)
SELECT 'relation ' || r.oid::regclass || ' kind=' || r.relkind::text || ' member=' || r.member
       || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(c.relacl) x), '-')
       || ' comment=' || coalesce(obj_description(r.oid, 'pg_class'), '-')
       || ' columns=' || coalesce((
            SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                              || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                              || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                              || CASE a.attidentity::text WHEN '' THEN '' ELSE ' identity ' || a.attidentity::text END
                              || coalesce(' acl ' || (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x), ''),
                              ', ' ORDER BY a.attnum)
              FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped), '-')
       || ' constraints=' || coalesce((SELECT string_agg(conname || ': ' || pg_get_constraintdef(oid), '; ' ORDER BY conname)
                                         FROM pg_constraint WHERE conrelid = r.oid), '-')
       || ' indexes=' || coalesce((SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY indexrelid::regclass::text)
                                     FROM pg_index WHERE indrelid = r.oid), '-')
       || ' triggers=' || coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), '; ' ORDER BY t.tgname)
                                      FROM pg_trigger t WHERE t.tgrelid = r.oid AND NOT t.tgisinternal), '-')
       || ' view=' || CASE WHEN r.relkind = 'v' THEN pg_get_viewdef(r.oid) ELSE '-' END
       || ' dumped=' || coalesce((SELECT coalesce(e.extcondition[i], '') FROM pg_extension e,
                                          generate_subscripts(e.extconfig, 1) i
                                   WHERE e.extname = 'webhook_emitter' AND e.extconfig[i] = r.oid), 'no')
  FROM rels r JOIN pg_class c ON c.oid = r.oid
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' member=' || (p.oid IN (SELECT objid FROM members))
       || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(p.proacl) x), '-')
       || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
       || ' def=' || CASE WHEN p.prokind = 'a'
                          THEN (SELECT format('aggregate sfunc=%s stype=%s initcond=%s', a.aggtransfn,
                                              a.aggtranstype::regtype, a.agginitval)
                                  FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
                          ELSE pg_get_functiondef(p.oid) END
  FROM pg_proc p
 WHERE p.pronamespace IN ('webhook'::regnamespace, 'lms'::regnamespace)
UNION ALL
SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) FROM members m
UNION ALL
SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(n.nspacl) x), '-')
       || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
  FROM pg_namespace n WHERE n.nspname IN ('webhook', 'lms')
ORDER BY 1;
