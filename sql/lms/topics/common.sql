-- webhook_emitter: what the builders of the documented LMS topics share:
-- formatting helpers and fragments (sql/lms/topics/*.sql hold the builders and
-- the topic definitions, one file per group of tables).
--
-- Bodies are json (not jsonb) so the key order is the vendor documents'.
-- BrainCert topics: the builder returns the inner "payload" object; enqueue
-- adds the envelope. AOM topics: the builder returns the whole flat body.
-- Builders return null when the row does not exist (nothing is emitted).

-- ---------------------------------------------------------------------------
-- Formatting helpers
-- ---------------------------------------------------------------------------

-- BrainCert timestamps: 2024-02-14T21:52:13.530Z
CREATE FUNCTION lms.iso_utc(ts timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

-- AOM timestamps: Aug 11, 2020 04:58 PM (UTC)
CREATE FUNCTION lms.aom_date(ts timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'Mon DD, YYYY HH12:MI AM');

-- Money as a string with two decimals: 110.00
CREATE FUNCTION lms.money_text(amount numeric) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN pg_catalog.to_char(amount, 'FM999999999999990.00');

-- "30 minutes"; a test without limit says "unlimited"
CREATE FUNCTION lms.time_limit_text(minutes integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN minutes IS NULL THEN 'unlimited'
    WHEN minutes = 1 THEN '1 minute'
    ELSE minutes::text || ' minutes'
END;

CREATE FUNCTION lms.yes_no(flag boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN flag THEN 'yes' ELSE 'no' END;

CREATE FUNCTION lms.full_name(first_name text, last_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.btrim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''));

-- ---------------------------------------------------------------------------
-- Shared fragments
-- ---------------------------------------------------------------------------

CREATE FUNCTION lms.user_registration_fields_json(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT coalesce(json_agg(json_build_object(
               'field_id', f.field_id,
               'field_name', f.field_name,
               'field_value', v.value)
           ORDER BY f.position, f.field_id), '[]'::json)
    FROM lms.user_registration_values v
    JOIN lms.registration_fields f ON f.field_id = v.field_id
    WHERE v.user_id = p_user_id
    );
END
$fn$;

CREATE FUNCTION lms.user_groups_json(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT coalesce(json_agg(json_build_object(
               'group_id', g.id::text,
               'group_name', g.name)
           ORDER BY g.id), '[]'::json)
    FROM lms.user_groups ug
    JOIN lms.groups g ON g.id = ug.group_id
    WHERE ug.user_id = p_user_id
    );
END
$fn$;

CREATE FUNCTION lms.user_roles_json(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT coalesce(json_agg(json_build_object(
               'role_id', r.id::text,
               'role_name', r.name)
           ORDER BY r.id), '[]'::json)
    FROM lms.user_roles ur
    JOIN lms.roles r ON r.id = ur.role_id
    WHERE ur.user_id = p_user_id
    );
END
$fn$;

-- [{id, first_name, last_name, bio}] of a course, in display order
CREATE FUNCTION lms.course_instructors_json(p_course_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT coalesce(json_agg(json_build_object(
               'id', i.id,
               'first_name', i.first_name,
               'last_name', i.last_name,
               'bio', i.bio)
           ORDER BY ci.position, i.id), '[]'::json)
    FROM lms.course_instructors ci
    JOIN lms.instructors i ON i.id = ci.instructor_id
    WHERE ci.course_id = p_course_id
    );
END
$fn$;

-- AOM {id, name} of a course's first instructor (null if it has none)
CREATE FUNCTION lms.course_lead_instructor_json(p_course_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object('id', i.id, 'name', lms.full_name(i.first_name, i.last_name))
    FROM lms.course_instructors ci
    JOIN lms.instructors i ON i.id = ci.instructor_id
    WHERE ci.course_id = p_course_id
    ORDER BY ci.position, i.id
    LIMIT 1
    );
END
$fn$;

-- {email, first_name, id, last_name} as in the enrollment payloads
CREATE FUNCTION lms.enrollment_user_json(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'email', u.email,
               'first_name', u.first_name,
               'id', u.id,
               'last_name', u.last_name)
    FROM lms.users u
    WHERE u.id = p_user_id
    );
END
$fn$;

-- Note: the builders are plpgsql, not SQL functions: PostgreSQL 15 plans a
-- non-inlined SQL function anew on every call, plpgsql caches its plans.
-- They carry no SET search_path (a per-call GUC save/restore): they are
-- called from the SECURITY DEFINER trigger functions, which set it, and
-- every name in them is schema-qualified.
