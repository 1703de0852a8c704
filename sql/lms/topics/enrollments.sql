-- webhook_emitter: the documented topics of enrollments in courses, tests and live classes; course completions.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

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

-- course.enrolled (AOM body): one event per statement, with the distinct
-- users and courses of all the enrollments it inserted.
-- A generic plan: with an array argument the custom plans look cheaper, so
-- the plan cache would plan both queries anew on every call (5x the cost).
CREATE FUNCTION lms.course_enrolled_body(p_enrollment_ids bigint[]) RETURNS json
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    RETURN json_build_object(
        'userList', (
            SELECT coalesce(json_agg(json_build_object(
                       'id', u.id,
                       'first_name', u.first_name,
                       'last_name', u.last_name,
                       'email', u.email)
                   ORDER BY u.id), '[]'::json)
            FROM lms.users u
            WHERE u.id IN (SELECT e.user_id FROM lms.course_enrollments e WHERE e.id = ANY (p_enrollment_ids))),
        'enrolled_courses_list', (
            SELECT coalesce(json_agg(json_build_object(
                       'id', c.id,
                       'name', c.name)
                   ORDER BY c.id), '[]'::json)
            FROM lms.courses c
            WHERE c.id IN (SELECT e.course_id FROM lms.course_enrollments e WHERE e.id = ANY (p_enrollment_ids))));
END
$fn$;

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'course.enrollment',
    display_name => 'Course Enrollment',
    description => 'Fires when a user enrolls in a course.',
    source => 'braincert',
    resource => 'course_enrollment', action => 'enrollment',
    source_table => 'lms.course_enrollments', builder => 'lms.course_enrollment_payload(bigint)',
    sample_body => $json${
  "id": "20240126171756020665195",
  "resource": "course_enrollment",
  "action": "enrollment",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-01-26T22:17:01.924Z",
  "timestamp": 1706307421,
  "payload": {
    "activated_at": "2024-01-26T22:16:52.255Z",
    "course": {
      "id": 101,
      "name": "Advanced Web Development"
    },
    "enrollment_id": 97472,
    "started_at": "2024-01-26T22:17:01.891Z",
    "user": {
      "email": "jane.doe@example.com",
      "first_name": "Jane",
      "id": 123457,
      "last_name": "Doe"
    }
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'course.enrolled',
    display_name => 'Enrolled in a course',
    description => 'Fires when users are enrolled in courses (one event per INSERT statement, listing its distinct users in userList and courses in enrolled_courses_list).',
    source => 'aom',
    source_table => 'lms.course_enrollments', builder => 'lms.course_enrolled_body(bigint[])',
    timing => 'statement',
    sample_body => $json${
  "userList": [
    {
      "id": 1,
      "first_name": "Aom",
      "last_name": "Staff",
      "email": "dev@academyofmine.com"
    }
  ],
  "enrolled_courses_list": [
    {
      "id": 2,
      "name": "Professional Development and Training"
    }
  ]
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'test.enrollment',
    display_name => 'Test Enrollment',
    description => 'Fires when a user enrolls in a test.',
    source => 'braincert',
    resource => 'test_enrollment', action => 'enrollment',
    source_table => 'lms.test_enrollments', builder => 'lms.test_enrollment_payload(bigint)',
    sample_body => $json${
  "id": "20240127171756020665196",
  "resource": "test_enrollment",
  "action": "enrollment",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-01-27T22:17:01.924Z",
  "timestamp": 1706393821,
  "payload": {
    "activated_at": "2024-01-27T22:16:52.255Z",
    "test": {
      "id": 202,
      "name": "Webhooks Certification Exam"
    },
    "enrollment_id": 97473,
    "started_at": "2024-01-27T22:17:01.891Z",
    "user": {
      "email": "john.public@example.com",
      "first_name": "John",
      "id": 123458,
      "last_name": "Public"
    }
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'live_class.enrollment',
    display_name => 'Live Class Enrollment',
    description => 'Fires when a user enrolls in a live class.',
    source => 'braincert',
    resource => 'virtual classroom', action => 'enrollment',
    source_table => 'lms.live_class_enrollments', builder => 'lms.live_class_enrollment_payload(bigint)',
    sample_body => $json${
  "id": "20240303192058040865502",
  "resource": "virtual classroom",
  "action": "enrollment",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-03-03T17:20:03.408Z",
  "timestamp": 1709486403,
  "payload": {
    "class_id": 202223,
    "live_class": {
      "name": "Advanced Yoga Techniques",
      "datacenter": "New York",
      "class_type": "One-time",
      "scheduled_date": "2024-04-01",
      "scheduled_time": "08:00:00"
    },
    "enrollment_id": 97676,
    "enrolled_at": "2024-03-03T17:20:03.401Z",
    "user": {
      "email": "morgan.practitioner@example.com",
      "first_name": "Morgan",
      "id": 123461,
      "last_name": "Practitioner"
    },
    "enrollment_status": "Active"
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'course.completed',
    display_name => 'Course Completed',
    description => 'Fires when a user completes a course.',
    source => 'braincert',
    resource => 'course_completion', action => 'completed',
    source_table => 'lms.course_completions', builder => 'lms.course_completion_payload(bigint)',
    sample_body => $json${
  "id": "20240214103000123456789",
  "resource": "course_completion",
  "action": "completed",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T12:00:00.000Z",
  "timestamp": 1707912000,
  "payload": {
    "course": {
      "id": 12345,
      "title": "Example Course Title",
      "completion_date": "2024-02-14T12:00:00.000Z"
    },
    "user": {
      "first_name": "John",
      "last_name": "Doe",
      "id": 67890,
      "email": "john.doe@example.com"
    },
    "completion_details": {
      "certificate_issued": "yes",
      "certificate_expiry": "yes",
      "certificate_expiration_date": "2025-02-14T12:00:00.000Z"
    }
  }
}$json$);
