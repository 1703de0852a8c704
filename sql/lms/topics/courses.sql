-- webhook_emitter: the documented topics of courses and course bundles: created, updated, deleted.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

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

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'course.created',
    display_name => 'Course Created',
    description => 'Fires when a course is inserted.',
    source => 'braincert',
    resource => 'course', action => 'created',
    source_table => 'lms.courses', builder => 'lms.course_payload(bigint)',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "course",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Introduction to Webhooks",
    "slug": "introduction-to-webhooks",
    "subtitle": "The Power of Real-Time Integrations",
    "description": "A comprehensive guide to understanding and implementing webhooks. Learn through hands-on examples and real-world scenarios.",
    "course_card_image_url": "/assets/images/intro-to-webhooks.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "instructors": [
      {
        "id": 890789,
        "first_name": "Alex",
        "last_name": "Smith",
        "bio": "Senior Developer and Educator"
      },
      {
        "id": 890790,
        "first_name": "Jamie",
        "last_name": "Doe",
        "bio": "Expert in Webhook Integrations"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'course.updated',
    display_name => 'Course Updated',
    description => 'Fires when a course really changes.',
    source => 'braincert',
    resource => 'course', action => 'updated',
    source_table => 'lms.courses', builder => 'lms.course_payload(bigint)',
    operations => '{update}',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "course",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Introduction to Webhooks",
    "slug": "introduction-to-webhooks",
    "subtitle": "The Power of Real-Time Integrations",
    "description": "A comprehensive guide to understanding and implementing webhooks. Learn through hands-on examples and real-world scenarios.",
    "course_card_image_url": "/assets/images/intro-to-webhooks.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "instructors": [
      {
        "id": 890789,
        "first_name": "Alex",
        "last_name": "Smith",
        "bio": "Senior Developer and Educator"
      },
      {
        "id": 890790,
        "first_name": "Jamie",
        "last_name": "Doe",
        "bio": "Expert in Webhook Integrations"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'course.deleted',
    display_name => 'Course Deleted',
    description => 'Fires when a course is deleted.',
    source => 'braincert',
    resource => 'course', action => 'deleted',
    source_table => 'lms.courses', builder => 'lms.course_payload(bigint)',
    operations => '{delete}',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "course",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Introduction to Webhooks",
    "slug": "introduction-to-webhooks",
    "subtitle": "The Power of Real-Time Integrations",
    "description": "A comprehensive guide to understanding and implementing webhooks. Learn through hands-on examples and real-world scenarios.",
    "course_card_image_url": "/assets/images/intro-to-webhooks.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "instructors": [
      {
        "id": 890789,
        "first_name": "Alex",
        "last_name": "Smith",
        "bio": "Senior Developer and Educator"
      },
      {
        "id": 890790,
        "first_name": "Jamie",
        "last_name": "Doe",
        "bio": "Expert in Webhook Integrations"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'bundle.created',
    display_name => 'Course Bundle Created',
    description => 'Fires when a bundle is inserted.',
    source => 'braincert',
    resource => 'bundle', action => 'created',
    source_table => 'lms.bundles', builder => 'lms.bundle_payload(bigint)',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "bundle",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Webhooks Mastery Bundle",
    "slug": "webhooks-mastery-bundle",
    "description": "This bundle includes a comprehensive set of courses to master webhooks, from basic concepts to advanced implementations.",
    "bundle_card_image_url": "/assets/images/webhooks-mastery-bundle.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "courses": [
      {
        "course_id": 101,
        "course_name": "Introduction to Webhooks",
        "instructors": [
          {
            "id": 890789,
            "first_name": "Alex",
            "last_name": "Smith",
            "bio": "Senior Developer and Educator"
          }
        ]
      },
      {
        "course_id": 102,
        "course_name": "Advanced Webhooks in Practice",
        "instructors": [
          {
            "id": 890790,
            "first_name": "Jamie",
            "last_name": "Doe",
            "bio": "Expert in Webhook Integrations"
          }
        ]
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'bundle.updated',
    display_name => 'Course Bundle Updated',
    description => 'Fires when a bundle really changes.',
    source => 'braincert',
    resource => 'bundle', action => 'updated',
    source_table => 'lms.bundles', builder => 'lms.bundle_payload(bigint)',
    operations => '{update}',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "bundle",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Webhooks Mastery Bundle",
    "slug": "webhooks-mastery-bundle",
    "description": "This bundle includes a comprehensive set of courses to master webhooks, from basic concepts to advanced implementations.",
    "bundle_card_image_url": "/assets/images/webhooks-mastery-bundle.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "courses": [
      {
        "course_id": 101,
        "course_name": "Introduction to Webhooks",
        "instructors": [
          {
            "id": 890789,
            "first_name": "Alex",
            "last_name": "Smith",
            "bio": "Senior Developer and Educator"
          }
        ]
      },
      {
        "course_id": 102,
        "course_name": "Advanced Webhooks in Practice",
        "instructors": [
          {
            "id": 890790,
            "first_name": "Jamie",
            "last_name": "Doe",
            "bio": "Expert in Webhook Integrations"
          }
        ]
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'bundle.deleted',
    display_name => 'Course Bundle Deleted',
    description => 'Fires when a bundle is deleted.',
    source => 'braincert',
    resource => 'bundle', action => 'deleted',
    source_table => 'lms.bundles', builder => 'lms.bundle_payload(bigint)',
    operations => '{delete}',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "bundle",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Webhooks Mastery Bundle",
    "slug": "webhooks-mastery-bundle",
    "description": "This bundle includes a comprehensive set of courses to master webhooks, from basic concepts to advanced implementations.",
    "bundle_card_image_url": "/assets/images/webhooks-mastery-bundle.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "courses": [
      {
        "course_id": 101,
        "course_name": "Introduction to Webhooks",
        "instructors": [
          {
            "id": 890789,
            "first_name": "Alex",
            "last_name": "Smith",
            "bio": "Senior Developer and Educator"
          }
        ]
      },
      {
        "course_id": 102,
        "course_name": "Advanced Webhooks in Practice",
        "instructors": [
          {
            "id": 890790,
            "first_name": "Jamie",
            "last_name": "Doe",
            "bio": "Expert in Webhook Integrations"
          }
        ]
      }
    ]
  }
}$json$);
