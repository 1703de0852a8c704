-- webhook_emitter: payload builders and triggers for the 36 topics.
--
-- Needs (created by the core before this file runs):
--   webhook.topic_wanted(topic text) -> boolean
--   webhook.enqueue(topic text, body json) -> text (event id)
-- and lms_schema.sql.
--
-- Bodies are json (not jsonb) so the key order is the vendor documents'.
-- BrainCert topics: the builder returns the inner "payload" object; enqueue
-- adds the envelope. AOM topics: the builder returns the whole flat body.
--
-- Timing:
--  * INSERT/UPDATE events use deferred constraint triggers: the body is
--    built at commit from the row as it is then (re-read by key; nothing is
--    emitted if the row is gone), so rows written later in the same
--    transaction (groups of a new user, items of an order, receivers of an
--    announcement) are included.
--  * DELETE events use BEFORE DELETE row triggers: the row and its children
--    are still there, so the body shows the entity as it was.
--  * UPDATE triggers have WHEN (OLD.* IS DISTINCT FROM NEW.*) (or a narrower
--    column condition), so an UPDATE that changes nothing emits nothing.
--  * Status topics (orders, assignment evaluation) are emitted at commit only
--    if the row still has the status that caused the event.
--  * Every trigger function asks webhook.topic_wanted() first and returns
--    before building anything when nobody subscribes.
--  * Trigger functions are SECURITY DEFINER with a fixed search_path, so the
--    LMS application role needs no rights on schema webhook.

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

-- ---------------------------------------------------------------------------
-- Payload builders (return null when the row does not exist)
-- ---------------------------------------------------------------------------

-- user.created (payload)
CREATE FUNCTION lms.user_created_payload(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'name', lms.full_name(u.first_name, u.last_name),
               'user_id', u.id,
               'email', u.email,
               'date_added', lms.iso_utc(u.created_at),
               'avatar_url', u.avatar_url,
               'custom_registration_fields', lms.user_registration_fields_json(u.id),
               'groups', lms.user_groups_json(u.id),
               'roles', lms.user_roles_json(u.id))
    FROM lms.users u
    WHERE u.id = p_user_id
    );
END
$fn$;

-- user.updated / user.deleted (payload)
CREATE FUNCTION lms.user_payload(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', u.id,
               'first_name', u.first_name,
               'last_name', u.last_name,
               'email', u.email,
               'roles', lms.user_roles_json(u.id),
               'custom_registration_fields', lms.user_registration_fields_json(u.id),
               'groups', lms.user_groups_json(u.id))
    FROM lms.users u
    WHERE u.id = p_user_id
    );
END
$fn$;

-- account.created (AOM body)
CREATE FUNCTION lms.account_created_body(p_user_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', u.id,
               'first_name', u.first_name,
               'last_name', u.last_name,
               'email', u.email,
               'date_registered', lms.aom_date(u.created_at))
    FROM lms.users u
    WHERE u.id = p_user_id
    );
END
$fn$;

-- group.created (payload)
CREATE FUNCTION lms.group_payload(p_group_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'group_id', g.id,
               'group_name', g.name,
               'description', g.description)
    FROM lms.groups g
    WHERE g.id = p_group_id
    );
END
$fn$;

-- course.created / course.updated / course.deleted (payload)
CREATE FUNCTION lms.course_payload(p_course_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', c.id,
               'name', c.name,
               'slug', c.slug,
               'subtitle', c.subtitle,
               'description', c.description,
               'course_card_image_url', c.card_image_url,
               'created_at', lms.iso_utc(c.created_at),
               'payment_type', c.payment_type,
               'instructors', lms.course_instructors_json(c.id))
    FROM lms.courses c
    WHERE c.id = p_course_id
    );
END
$fn$;

-- bundle.created / bundle.updated / bundle.deleted (payload)
CREATE FUNCTION lms.bundle_payload(p_bundle_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', b.id,
               'name', b.name,
               'slug', b.slug,
               'description', b.description,
               'bundle_card_image_url', b.card_image_url,
               'created_at', lms.iso_utc(b.created_at),
               'payment_type', b.payment_type,
               'courses', (
                   SELECT coalesce(json_agg(json_build_object(
                              'course_id', c.id,
                              'course_name', c.name,
                              'instructors', lms.course_instructors_json(c.id))
                          ORDER BY bc.position, c.id), '[]'::json)
                   FROM lms.bundle_courses bc
                   JOIN lms.courses c ON c.id = bc.course_id
                   WHERE bc.bundle_id = b.id))
    FROM lms.bundles b
    WHERE b.id = p_bundle_id
    );
END
$fn$;

-- test.created / test.updated / test.deleted (payload)
CREATE FUNCTION lms.test_payload(p_test_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', t.id,
               'name', t.name,
               'slug', t.slug,
               'description', t.description,
               'tes_card_image_url', t.card_image_url,
               'scoring_type', t.scoring_type,
               'time_limit', lms.time_limit_text(t.time_limit_minutes),
               'payment_type', t.payment_type,
               'created_at', lms.iso_utc(t.created_at),
               'instructor', json_build_object(
                   'id', i.id,
                   'first_name', i.first_name,
                   'last_name', i.last_name,
                   'bio', i.bio))
    FROM lms.tests t
    JOIN lms.instructors i ON i.id = t.instructor_id
    WHERE t.id = p_test_id
    );
END
$fn$;

-- live_class.created / live_class.updated / live_class.deleted (payload)
CREATE FUNCTION lms.live_class_payload(p_live_class_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'class_id', lc.id,
               'name', lc.name,
               'slug', lc.slug,
               'description', lc.description,
               'datacenter', lc.datacenter,
               'class_type', lc.class_type,
               'attendee_limit', lc.attendee_limit,
               'scheduled_date', to_char(lc.scheduled_date, 'YYYY-MM-DD'),
               'scheduled_time', to_char(lc.scheduled_time, 'HH24:MI:SS'),
               'instructors', (
                   SELECT coalesce(json_agg(json_build_object(
                              'id', i.id,
                              'first_name', i.first_name,
                              'last_name', i.last_name)
                          ORDER BY li.position, i.id), '[]'::json)
                   FROM lms.live_class_instructors li
                   JOIN lms.instructors i ON i.id = li.instructor_id
                   WHERE li.live_class_id = lc.id))
    FROM lms.live_classes lc
    WHERE lc.id = p_live_class_id
    );
END
$fn$;

-- product.created / product.deleted (payload). The document shows price,
-- discount, shipping_charge and weight as strings; "id" is an extra key.
CREATE FUNCTION lms.product_payload(p_product_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'product_type', p.product_type,
               'name', p.name,
               'excerpt', p.excerpt,
               'slug', p.slug,
               'price', lms.money_text(p.price),
               'discount', lms.money_text(p.discount),
               'description', p.description,
               'shipping_option', p.shipping_option,
               'shipping_charge', lms.money_text(p.shipping_charge),
               'weight', trim_scale(p.weight)::text || ' ' || p.weight_unit,
               'banner', p.banner_url,
               'sku', coalesce(p.sku, ''),
               'track_stock', p.track_stock,
               'items_in_stock', p.items_in_stock,
               'id', p.id)
    FROM lms.products p
    WHERE p.id = p_product_id
    );
END
$fn$;

-- course.enrollment (payload)
CREATE FUNCTION lms.course_enrollment_payload(p_enrollment_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'activated_at', lms.iso_utc(e.activated_at),
               'course', json_build_object('id', c.id, 'name', c.name),
               'enrollment_id', e.id,
               'started_at', lms.iso_utc(e.started_at),
               'user', lms.enrollment_user_json(e.user_id))
    FROM lms.course_enrollments e
    JOIN lms.courses c ON c.id = e.course_id
    WHERE e.id = p_enrollment_id
    );
END
$fn$;

-- test.enrollment (payload)
CREATE FUNCTION lms.test_enrollment_payload(p_enrollment_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'activated_at', lms.iso_utc(e.activated_at),
               'test', json_build_object('id', t.id, 'name', t.name),
               'enrollment_id', e.id,
               'started_at', lms.iso_utc(e.started_at),
               'user', lms.enrollment_user_json(e.user_id))
    FROM lms.test_enrollments e
    JOIN lms.tests t ON t.id = e.test_id
    WHERE e.id = p_enrollment_id
    );
END
$fn$;

-- live_class.enrollment (payload)
CREATE FUNCTION lms.live_class_enrollment_payload(p_enrollment_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'class_id', lc.id,
               'live_class', json_build_object(
                   'name', lc.name,
                   'datacenter', lc.datacenter,
                   'class_type', lc.class_type,
                   'scheduled_date', to_char(lc.scheduled_date, 'YYYY-MM-DD'),
                   'scheduled_time', to_char(lc.scheduled_time, 'HH24:MI:SS')),
               'enrollment_id', e.id,
               'enrolled_at', lms.iso_utc(e.enrolled_at),
               'user', lms.enrollment_user_json(e.user_id),
               'enrollment_status', e.status)
    FROM lms.live_class_enrollments e
    JOIN lms.live_classes lc ON lc.id = e.live_class_id
    WHERE e.id = p_enrollment_id
    );
END
$fn$;

-- course.completed (payload). certificate_expiration_date is "" when the
-- certificate does not expire (the document types it as a string).
CREATE FUNCTION lms.course_completion_payload(p_completion_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'course', json_build_object(
                   'id', c.id,
                   'title', c.name,
                   'completion_date', lms.iso_utc(cc.completion_date)),
               'user', json_build_object(
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'id', u.id,
                   'email', u.email),
               'completion_details', json_build_object(
                   'certificate_issued', lms.yes_no(cc.certificate_issued),
                   'certificate_expiry', lms.yes_no(cc.certificate_expires),
                   'certificate_expiration_date', coalesce(lms.iso_utc(cc.certificate_expiration_date), '')))
    FROM lms.course_completions cc
    JOIN lms.courses c ON c.id = cc.course_id
    JOIN lms.users u ON u.id = cc.user_id
    WHERE cc.id = p_completion_id
    );
END
$fn$;

-- test.completed (payload); attempt_id and completed_at are extra keys.
-- Null while the attempt is not completed.
CREATE FUNCTION lms.test_completed_payload(p_attempt_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', t.id,
               'name', t.name,
               'final_score', trim_scale(a.final_score),
               'passing_score', trim_scale(t.passing_score),
               'open_ended', lms.yes_no(t.open_ended),
               'scoring_type', t.scoring_type,
               'time_limit', lms.time_limit_text(t.time_limit_minutes),
               'manual_scoring', a.manual_scoring,
               'total_questions', a.total_questions,
               'correct_count', a.correct_count,
               'incorrect_count', a.incorrect_count,
               'user', json_build_object(
                   'id', u.id,
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'email', u.email),
               'attempt_id', a.id,
               'completed_at', lms.iso_utc(a.completed_at))
    FROM lms.test_attempts a
    JOIN lms.tests t ON t.id = a.test_id
    JOIN lms.users u ON u.id = a.user_id
    WHERE a.id = p_attempt_id
      AND a.completed_at IS NOT NULL
    );
END
$fn$;

-- Order amounts, shared by sale.new and the AOM order bodies:
--   item line      = price * quantity
--   item shipping  = shipping_charge * quantity
--   item_total     = line + shipping - discount
--   sub_total      = sum(line)                        (AOM sub_total)
--   total_amount   = max(sum(item_total) - coupons, 0)
--   total          = total_amount + service_charge   (AOM order_total)
CREATE FUNCTION lms.order_amounts(p_order_id bigint,
                                  OUT sub_total numeric, OUT total_amount numeric, OUT total numeric)
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    SELECT trim_scale(i.sub_total),
           trim_scale(greatest(i.items_total - c.coupon_total, 0)),
           trim_scale(greatest(i.items_total - c.coupon_total, 0) + o.service_charge)
    INTO sub_total, total_amount, total
    FROM lms.orders o
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(oi.price * oi.quantity), 0) AS sub_total,
               coalesce(sum(oi.price * oi.quantity + oi.shipping_charge * oi.quantity - oi.discount), 0) AS items_total
        FROM lms.order_items oi
        WHERE oi.order_id = o.id) i
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(oc.amount), 0) AS coupon_total
        FROM lms.order_coupons oc
        WHERE oc.order_id = o.id) c
    WHERE o.id = p_order_id;
END
$fn$;

-- sale.new (payload)
CREATE FUNCTION lms.sale_payload(p_order_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'order_id', o.order_code,
               'order_date', lms.iso_utc(o.created_at),
               'payment_method', o.payment_method,
               'payment_mode', o.payment_mode,
               'currency', o.currency,
               'total_amount', amt.total_amount,
               'service_charge', trim_scale(o.service_charge),
               'total', amt.total,
               'payment_status', CASE o.status
                                     WHEN 'COMPLETED' THEN 'paid'
                                     WHEN 'PENDING' THEN 'pending'
                                     WHEN 'FAILED' THEN 'failed'
                                     WHEN 'REFUNDED' THEN 'refunded'
                                 END,
               'items', (
                   SELECT coalesce(json_agg(json_build_object(
                              'type', oi.item_type,
                              'name', oi.name,
                              'price', trim_scale(oi.price),
                              'quantity', oi.quantity,
                              'shipping_charge', trim_scale(oi.shipping_charge),
                              'total_shipping_amount', trim_scale(oi.shipping_charge * oi.quantity),
                              'discount', trim_scale(oi.discount),
                              'item_total', trim_scale(oi.price * oi.quantity
                                                       + oi.shipping_charge * oi.quantity - oi.discount))
                          ORDER BY oi.id), '[]'::json)
                   FROM lms.order_items oi
                   WHERE oi.order_id = o.id),
               'user', json_build_object(
                   'email', u.email,
                   'first_name', u.first_name,
                   'customer_since', lms.iso_utc(coalesce(u.customer_since, u.created_at))))
    FROM lms.orders o
    JOIN lms.users u ON u.id = o.user_id
    CROSS JOIN LATERAL lms.order_amounts(o.id) amt
    WHERE o.id = p_order_id
    );
END
$fn$;

-- order.placed / order.failed / order.refunded / payment.pending (AOM body)
CREATE FUNCTION lms.order_body(p_order_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', o.id,
               'date_created', lms.aom_date(o.created_at),
               'status', o.status,
               'currency', o.currency_name,
               'order_total', amt.total,
               'sub_total', amt.sub_total,
               'transaction_ref', o.transaction_ref,
               'payment_gateway', json_build_object(
                   'id', o.payment_gateway_id,
                   'name', o.payment_gateway_name),
               'customer', json_build_object(
                   'id', u.id,
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'email', u.email,
                   'billing_address', json_build_object(
                       'full_name', coalesce(o.billing_full_name, ''),
                       'address_line_1', coalesce(o.billing_address_line_1, ''),
                       'address_line_2', coalesce(o.billing_address_line_2, ''),
                       'city', coalesce(o.billing_city, ''),
                       'country', coalesce(o.billing_country, ''),
                       'state', coalesce(o.billing_state, ''),
                       'zipcode', coalesce(o.billing_zipcode, ''))),
               'line_items', (
                   SELECT coalesce(json_agg(json_build_object(
                              'product_id', coalesce(oi.product_id, oi.course_id, oi.test_id,
                                                     oi.bundle_id, oi.live_class_id),
                              'product_name', oi.name,
                              'quantity', oi.quantity,
                              'price_per_qty', lms.money_text(oi.price),
                              'total', lms.money_text(oi.price * oi.quantity),
                              'product_type', oi.item_type)
                          ORDER BY oi.id), '[]'::json)
                   FROM lms.order_items oi
                   WHERE oi.order_id = o.id),
               'coupons', (
                   SELECT coalesce(json_agg(json_build_object(
                              'code', oc.code,
                              'amount', lms.money_text(oc.amount))
                          ORDER BY oc.id), '[]'::json)
                   FROM lms.order_coupons oc
                   WHERE oc.order_id = o.id),
               'notes', CASE WHEN coalesce(o.notes, '') = '' THEN '[]'::json
                             ELSE json_build_array(o.notes) END)
    FROM lms.orders o
    JOIN lms.users u ON u.id = o.user_id
    CROSS JOIN LATERAL lms.order_amounts(o.id) amt
    WHERE o.id = p_order_id
    );
END
$fn$;

-- quiz.submitted (AOM body); top-level id is the user's, as in the document
CREATE FUNCTION lms.quiz_submission_body(p_submission_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', u.id,
               'first_name', u.first_name,
               'last_name', u.last_name,
               'email', u.email,
               'date_submitted', lms.aom_date(s.submitted_at),
               'quiz', json_build_object('id', q.id, 'name', q.name),
               'course', json_build_object('id', c.id, 'name', c.name),
               'course_instructor_name', lms.course_lead_instructor_json(c.id))
    FROM lms.quiz_submissions s
    JOIN lms.quizzes q ON q.id = s.quiz_id
    JOIN lms.courses c ON c.id = q.course_id
    JOIN lms.users u ON u.id = s.user_id
    WHERE s.id = p_submission_id
    );
END
$fn$;

-- assignment.submitted (AOM body); with p_evaluation the derived
-- assignment.evaluated / assignment.rejected body: the same keys plus
-- status, grade, feedback, date_evaluated.
CREATE FUNCTION lms.assignment_submission_body(p_submission_id bigint, p_evaluation boolean DEFAULT false)
RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT CASE WHEN p_evaluation THEN
               json_build_object(
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'email', u.email,
                   'date_submitted', lms.aom_date(s.submitted_at),
                   'assignment', json_build_object('id', a.id::text, 'name', a.name),
                   'course', json_build_object('id', c.id, 'name', c.name),
                   'course_instructor', lms.course_lead_instructor_json(c.id),
                   'status', s.status,
                   'grade', trim_scale(s.grade),
                   'feedback', coalesce(s.feedback, ''),
                   'date_evaluated', lms.aom_date(s.evaluated_at))
           ELSE
               json_build_object(
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'email', u.email,
                   'date_submitted', lms.aom_date(s.submitted_at),
                   'assignment', json_build_object('id', a.id::text, 'name', a.name),
                   'course', json_build_object('id', c.id, 'name', c.name),
                   'course_instructor', lms.course_lead_instructor_json(c.id))
           END
    FROM lms.assignment_submissions s
    JOIN lms.assignments a ON a.id = s.assignment_id
    JOIN lms.courses c ON c.id = a.course_id
    JOIN lms.users u ON u.id = s.user_id
    WHERE s.id = p_submission_id
    );
END
$fn$;

-- discussion.submitted (AOM body)
CREATE FUNCTION lms.discussion_post_body(p_post_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', u.id,
               'first_name', u.first_name,
               'last_name', u.last_name,
               'email', u.email,
               'discussion', json_build_object('id', d.id, 'name', d.name),
               'course', json_build_object('id', c.id, 'name', c.name),
               'course_instructor', lms.course_lead_instructor_json(c.id),
               'date_submitted', lms.aom_date(p.posted_at))
    FROM lms.discussion_posts p
    JOIN lms.discussions d ON d.id = p.discussion_id
    JOIN lms.courses c ON c.id = d.course_id
    JOIN lms.users u ON u.id = p.user_id
    WHERE p.id = p_post_id
    );
END
$fn$;

-- announcement.created (AOM body; "annoucement_date" is the document's spelling)
CREATE FUNCTION lms.announcement_body(p_announcement_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'receivers', (
                   SELECT coalesce(json_agg(json_build_object(
                              'first_name', ru.first_name,
                              'last_name', ru.last_name,
                              'name', lms.full_name(ru.first_name, ru.last_name),
                              'email', ru.email)
                          ORDER BY ru.id), '[]'::json)
                   FROM lms.announcement_receivers ar
                   JOIN lms.users ru ON ru.id = ar.user_id
                   WHERE ar.announcement_id = an.id),
               'annoucement_date', lms.aom_date(an.published_at),
               'announcement_content', an.content,
               'announcement_title', an.title,
               'created_by', lms.full_name(cu.first_name, cu.last_name))
    FROM lms.announcements an
    JOIN lms.users cu ON cu.id = an.created_by
    WHERE an.id = p_announcement_id
      AND an.published_at IS NOT NULL
    );
END
$fn$;

-- ---------------------------------------------------------------------------
-- Trigger functions
-- ---------------------------------------------------------------------------

-- users: INSERT (deferred) -> user.created + account.created;
--        UPDATE (deferred) -> user.updated; BEFORE DELETE -> user.deleted
CREATE FUNCTION lms.users_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF webhook.topic_wanted('user.created') THEN
            body := lms.user_created_payload(NEW.id);
            IF body IS NOT NULL THEN
                PERFORM webhook.enqueue('user.created', body);
            END IF;
        END IF;
        IF webhook.topic_wanted('account.created') THEN
            body := lms.account_created_body(NEW.id);
            IF body IS NOT NULL THEN
                PERFORM webhook.enqueue('account.created', body);
            END IF;
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        IF webhook.topic_wanted('user.updated') THEN
            body := lms.user_payload(NEW.id);
            IF body IS NOT NULL THEN
                PERFORM webhook.enqueue('user.updated', body);
            END IF;
        END IF;
        RETURN NULL;
    ELSE -- DELETE, before the row and its links are gone
        IF webhook.topic_wanted('user.deleted') THEN
            body := lms.user_payload(OLD.id);
            IF body IS NOT NULL THEN
                PERFORM webhook.enqueue('user.deleted', body);
            END IF;
        END IF;
        RETURN OLD;
    END IF;
END
$fn$;

-- groups: INSERT (deferred) -> group.created
CREATE FUNCTION lms.groups_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('group.created') THEN
        RETURN NULL;
    END IF;
    body := lms.group_payload(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('group.created', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- Catalog entities (courses, bundles, tests, live_classes, products):
-- TG_ARGV[0] is the topic prefix ("course", ...). INSERT -> <prefix>.created,
-- UPDATE -> <prefix>.updated (both deferred), BEFORE DELETE -> <prefix>.deleted.
CREATE FUNCTION lms.catalog_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    prefix text := TG_ARGV[0];
    topic  text;
    row_id bigint;
    body   json;
BEGIN
    topic := prefix || CASE TG_OP WHEN 'INSERT' THEN '.created'
                                  WHEN 'UPDATE' THEN '.updated'
                                  ELSE '.deleted' END;
    IF TG_OP = 'DELETE' THEN
        row_id := OLD.id;
    ELSE
        row_id := NEW.id;
    END IF;

    IF webhook.topic_wanted(topic) THEN
        body := CASE prefix
                    WHEN 'course' THEN lms.course_payload(row_id)
                    WHEN 'bundle' THEN lms.bundle_payload(row_id)
                    WHEN 'test' THEN lms.test_payload(row_id)
                    WHEN 'live_class' THEN lms.live_class_payload(row_id)
                    WHEN 'product' THEN lms.product_payload(row_id)
                END;
        IF body IS NOT NULL THEN
            PERFORM webhook.enqueue(topic, body);
        END IF;
    END IF;

    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NULL;
END
$fn$;

-- course_enrollments: per row (deferred) -> course.enrollment
CREATE FUNCTION lms.course_enrollments_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('course.enrollment') THEN
        RETURN NULL;
    END IF;
    body := lms.course_enrollment_payload(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('course.enrollment', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- course_enrollments: per statement -> ONE course.enrolled with the distinct
-- users and courses of all rows the statement inserted.
CREATE FUNCTION lms.course_enrolled_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('course.enrolled') THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM new_enrollments) THEN
        RETURN NULL;
    END IF;
    SELECT json_build_object(
               'userList', (
                   SELECT coalesce(json_agg(json_build_object(
                              'id', u.id,
                              'first_name', u.first_name,
                              'last_name', u.last_name,
                              'email', u.email)
                          ORDER BY u.id), '[]'::json)
                   FROM lms.users u
                   WHERE u.id IN (SELECT ne.user_id FROM new_enrollments ne)),
               'enrolled_courses_list', (
                   SELECT coalesce(json_agg(json_build_object(
                              'id', c.id,
                              'name', c.name)
                          ORDER BY c.id), '[]'::json)
                   FROM lms.courses c
                   WHERE c.id IN (SELECT ne.course_id FROM new_enrollments ne)))
    INTO body;
    PERFORM webhook.enqueue('course.enrolled', body);
    RETURN NULL;
END
$fn$;

-- test_enrollments: INSERT (deferred) -> test.enrollment
CREATE FUNCTION lms.test_enrollments_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('test.enrollment') THEN
        RETURN NULL;
    END IF;
    body := lms.test_enrollment_payload(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('test.enrollment', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- live_class_enrollments: INSERT (deferred) -> live_class.enrollment
CREATE FUNCTION lms.live_class_enrollments_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('live_class.enrollment') THEN
        RETURN NULL;
    END IF;
    body := lms.live_class_enrollment_payload(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('live_class.enrollment', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- course_completions: INSERT (deferred) -> course.completed
CREATE FUNCTION lms.course_completions_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('course.completed') THEN
        RETURN NULL;
    END IF;
    body := lms.course_completion_payload(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('course.completed', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- test_attempts: completed_at set on INSERT or by UPDATE (deferred) -> test.completed
CREATE FUNCTION lms.test_attempts_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('test.completed') THEN
        RETURN NULL;
    END IF;
    body := lms.test_completed_payload(NEW.id);  -- null if gone or no longer completed
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('test.completed', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- orders: status set by INSERT or changed by UPDATE (deferred). Emitted only
-- if, at commit, the order still has the status that caused the event.
--   COMPLETED -> sale.new + order.placed, FAILED -> order.failed,
--   REFUNDED -> order.refunded, PENDING -> payment.pending
CREATE FUNCTION lms.orders_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    aom_topic  text;
    want_sale  boolean := false;
    want_aom   boolean;
    cur_status text;
    body       json;
BEGIN
    aom_topic := CASE NEW.status
                     WHEN 'COMPLETED' THEN 'order.placed'
                     WHEN 'FAILED' THEN 'order.failed'
                     WHEN 'REFUNDED' THEN 'order.refunded'
                     WHEN 'PENDING' THEN 'payment.pending'
                 END;
    IF NEW.status = 'COMPLETED' THEN
        want_sale := webhook.topic_wanted('sale.new');
    END IF;
    want_aom := aom_topic IS NOT NULL AND webhook.topic_wanted(aom_topic);
    IF NOT (want_sale OR want_aom) THEN
        RETURN NULL;
    END IF;

    SELECT o.status INTO cur_status FROM lms.orders o WHERE o.id = NEW.id;
    IF NOT FOUND OR cur_status IS DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;

    IF want_sale THEN
        body := lms.sale_payload(NEW.id);
        IF body IS NOT NULL THEN
            PERFORM webhook.enqueue('sale.new', body);
        END IF;
    END IF;
    IF want_aom THEN
        body := lms.order_body(NEW.id);
        IF body IS NOT NULL THEN
            PERFORM webhook.enqueue(aom_topic, body);
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;

-- quiz_submissions: INSERT (deferred) -> quiz.submitted
CREATE FUNCTION lms.quiz_submissions_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('quiz.submitted') THEN
        RETURN NULL;
    END IF;
    body := lms.quiz_submission_body(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('quiz.submitted', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- assignment_submissions (deferred): INSERT -> assignment.submitted;
-- status becoming 'evaluated' / 'rejected' (on INSERT or UPDATE) ->
-- assignment.evaluated / assignment.rejected, if still so at commit.
CREATE FUNCTION lms.assignment_submissions_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    eval_topic text;
    cur_status text;
    body       json;
BEGIN
    IF TG_OP = 'INSERT' AND webhook.topic_wanted('assignment.submitted') THEN
        body := lms.assignment_submission_body(NEW.id, false);
        IF body IS NOT NULL THEN
            PERFORM webhook.enqueue('assignment.submitted', body);
        END IF;
    END IF;

    eval_topic := CASE NEW.status
                      WHEN 'evaluated' THEN 'assignment.evaluated'
                      WHEN 'rejected' THEN 'assignment.rejected'
                  END;
    IF eval_topic IS NULL OR NOT webhook.topic_wanted(eval_topic) THEN
        RETURN NULL;
    END IF;
    SELECT s.status INTO cur_status FROM lms.assignment_submissions s WHERE s.id = NEW.id;
    IF NOT FOUND OR cur_status IS DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    body := lms.assignment_submission_body(NEW.id, true);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue(eval_topic, body);
    END IF;
    RETURN NULL;
END
$fn$;

-- discussion_posts: INSERT (deferred) -> discussion.submitted
CREATE FUNCTION lms.discussion_posts_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('discussion.submitted') THEN
        RETURN NULL;
    END IF;
    body := lms.discussion_post_body(NEW.id);
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('discussion.submitted', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- announcements: published (published_at set on INSERT or by UPDATE;
-- deferred, so receivers of the same transaction are included) -> announcement.created
CREATE FUNCTION lms.announcements_webhook_tg() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body json;
BEGIN
    IF NOT webhook.topic_wanted('announcement.created') THEN
        RETURN NULL;
    END IF;
    body := lms.announcement_body(NEW.id);  -- null if gone or unpublished again
    IF body IS NOT NULL THEN
        PERFORM webhook.enqueue('announcement.created', body);
    END IF;
    RETURN NULL;
END
$fn$;

-- Trigger functions are only meant to run as triggers.
REVOKE ALL ON FUNCTION
    lms.users_webhook_tg(), lms.groups_webhook_tg(), lms.catalog_webhook_tg(),
    lms.course_enrollments_webhook_tg(), lms.course_enrolled_webhook_tg(),
    lms.test_enrollments_webhook_tg(), lms.live_class_enrollments_webhook_tg(),
    lms.course_completions_webhook_tg(), lms.test_attempts_webhook_tg(),
    lms.orders_webhook_tg(), lms.quiz_submissions_webhook_tg(),
    lms.assignment_submissions_webhook_tg(), lms.discussion_posts_webhook_tg(),
    lms.announcements_webhook_tg()
FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------

-- Triggers on the tables that exist: all of them on a fresh install or a
-- CREATE EXTENSION over kept tables; none while a dump is being restored
-- (the dump brings the tables, and their triggers, after this script).
DO $triggers$
BEGIN
    -- users
    IF pg_catalog.to_regclass('lms.users') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER users_webhook_insert
            AFTER INSERT ON lms.users DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.users_webhook_tg();
        CREATE CONSTRAINT TRIGGER users_webhook_update
            AFTER UPDATE ON lms.users DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION lms.users_webhook_tg();
        CREATE TRIGGER users_webhook_delete
            BEFORE DELETE ON lms.users
            FOR EACH ROW EXECUTE FUNCTION lms.users_webhook_tg();
    END IF;
    -- groups
    IF pg_catalog.to_regclass('lms.groups') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER groups_webhook_insert
            AFTER INSERT ON lms.groups DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.groups_webhook_tg();
    END IF;
    -- courses
    IF pg_catalog.to_regclass('lms.courses') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER courses_webhook_insert
            AFTER INSERT ON lms.courses DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('course');
        CREATE CONSTRAINT TRIGGER courses_webhook_update
            AFTER UPDATE ON lms.courses DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION lms.catalog_webhook_tg('course');
        CREATE TRIGGER courses_webhook_delete
            BEFORE DELETE ON lms.courses
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('course');
    END IF;
    -- bundles
    IF pg_catalog.to_regclass('lms.bundles') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER bundles_webhook_insert
            AFTER INSERT ON lms.bundles DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('bundle');
        CREATE CONSTRAINT TRIGGER bundles_webhook_update
            AFTER UPDATE ON lms.bundles DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION lms.catalog_webhook_tg('bundle');
        CREATE TRIGGER bundles_webhook_delete
            BEFORE DELETE ON lms.bundles
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('bundle');
    END IF;
    -- tests
    IF pg_catalog.to_regclass('lms.tests') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER tests_webhook_insert
            AFTER INSERT ON lms.tests DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('test');
        CREATE CONSTRAINT TRIGGER tests_webhook_update
            AFTER UPDATE ON lms.tests DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION lms.catalog_webhook_tg('test');
        CREATE TRIGGER tests_webhook_delete
            BEFORE DELETE ON lms.tests
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('test');
    END IF;
    -- live_classes
    IF pg_catalog.to_regclass('lms.live_classes') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER live_classes_webhook_insert
            AFTER INSERT ON lms.live_classes DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('live_class');
        CREATE CONSTRAINT TRIGGER live_classes_webhook_update
            AFTER UPDATE ON lms.live_classes DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION lms.catalog_webhook_tg('live_class');
        CREATE TRIGGER live_classes_webhook_delete
            BEFORE DELETE ON lms.live_classes
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('live_class');
    END IF;
    -- products (no product.updated topic)
    IF pg_catalog.to_regclass('lms.products') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER products_webhook_insert
            AFTER INSERT ON lms.products DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('product');
        CREATE TRIGGER products_webhook_delete
            BEFORE DELETE ON lms.products
            FOR EACH ROW EXECUTE FUNCTION lms.catalog_webhook_tg('product');
    END IF;
    -- course_enrollments
    IF pg_catalog.to_regclass('lms.course_enrollments') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER course_enrollments_webhook_insert
            AFTER INSERT ON lms.course_enrollments DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.course_enrollments_webhook_tg();
        CREATE TRIGGER course_enrollments_webhook_enrolled
            AFTER INSERT ON lms.course_enrollments
            REFERENCING NEW TABLE AS new_enrollments
            FOR EACH STATEMENT EXECUTE FUNCTION lms.course_enrolled_webhook_tg();
    END IF;
    -- test_enrollments
    IF pg_catalog.to_regclass('lms.test_enrollments') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER test_enrollments_webhook_insert
            AFTER INSERT ON lms.test_enrollments DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.test_enrollments_webhook_tg();
    END IF;
    -- live_class_enrollments
    IF pg_catalog.to_regclass('lms.live_class_enrollments') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER live_class_enrollments_webhook_insert
            AFTER INSERT ON lms.live_class_enrollments DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.live_class_enrollments_webhook_tg();
    END IF;
    -- course_completions
    IF pg_catalog.to_regclass('lms.course_completions') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER course_completions_webhook_insert
            AFTER INSERT ON lms.course_completions DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.course_completions_webhook_tg();
    END IF;
    -- test_attempts
    IF pg_catalog.to_regclass('lms.test_attempts') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER test_attempts_webhook_insert
            AFTER INSERT ON lms.test_attempts DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (NEW.completed_at IS NOT NULL)
            EXECUTE FUNCTION lms.test_attempts_webhook_tg();
        CREATE CONSTRAINT TRIGGER test_attempts_webhook_update
            AFTER UPDATE OF completed_at ON lms.test_attempts DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.completed_at IS NULL AND NEW.completed_at IS NOT NULL)
            EXECUTE FUNCTION lms.test_attempts_webhook_tg();
    END IF;
    -- orders
    IF pg_catalog.to_regclass('lms.orders') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER orders_webhook_insert
            AFTER INSERT ON lms.orders DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.orders_webhook_tg();
        CREATE CONSTRAINT TRIGGER orders_webhook_update
            AFTER UPDATE OF status ON lms.orders DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
            EXECUTE FUNCTION lms.orders_webhook_tg();
    END IF;
    -- quiz_submissions
    IF pg_catalog.to_regclass('lms.quiz_submissions') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER quiz_submissions_webhook_insert
            AFTER INSERT ON lms.quiz_submissions DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.quiz_submissions_webhook_tg();
    END IF;
    -- assignment_submissions
    IF pg_catalog.to_regclass('lms.assignment_submissions') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER assignment_submissions_webhook_insert
            AFTER INSERT ON lms.assignment_submissions DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.assignment_submissions_webhook_tg();
        CREATE CONSTRAINT TRIGGER assignment_submissions_webhook_update
            AFTER UPDATE OF status ON lms.assignment_submissions DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                               AND NEW.status IN ('evaluated', 'rejected'))
            EXECUTE FUNCTION lms.assignment_submissions_webhook_tg();
    END IF;
    -- discussion_posts
    IF pg_catalog.to_regclass('lms.discussion_posts') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER discussion_posts_webhook_insert
            AFTER INSERT ON lms.discussion_posts DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION lms.discussion_posts_webhook_tg();
    END IF;
    -- announcements
    IF pg_catalog.to_regclass('lms.announcements') IS NOT NULL THEN
        CREATE CONSTRAINT TRIGGER announcements_webhook_insert
            AFTER INSERT ON lms.announcements DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (NEW.published_at IS NOT NULL)
            EXECUTE FUNCTION lms.announcements_webhook_tg();
        CREATE CONSTRAINT TRIGGER announcements_webhook_update
            AFTER UPDATE OF published_at ON lms.announcements DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (OLD.published_at IS NULL AND NEW.published_at IS NOT NULL)
            EXECUTE FUNCTION lms.announcements_webhook_tg();
    END IF;
END
$triggers$;
