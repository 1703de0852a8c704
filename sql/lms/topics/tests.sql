-- webhook_emitter: the documented topics of tests (assessments) and live classes: created, updated, deleted.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

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

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'test.created',
    display_name => 'Test Created',
    description => 'Fires when a test (assessment) is inserted.',
    source => 'braincert',
    resource => 'assessment', action => 'created',
    source_table => 'lms.tests', builder => 'lms.test_payload(bigint)',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "assessment",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Assessment",
    "slug": "advanced-webhooks-assessment",
    "description": "Test your knowledge and application skills on webhooks with this comprehensive assessment.",
    "tes_card_image_url": "/assets/images/intro-to-webhooks.png",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "payment_type": "paid",
    "created_at": "2024-02-14T21:52:13.530Z",
    "instructor": {
      "id": 890789,
      "first_name": "Alex",
      "last_name": "Smith",
      "bio": "Senior Developer and Educator"
    }
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'test.updated',
    display_name => 'Test Updated',
    description => 'Fires when a test really changes.',
    source => 'braincert',
    resource => 'assessment', action => 'updated',
    source_table => 'lms.tests', builder => 'lms.test_payload(bigint)',
    operations => '{update}',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "assessment",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Assessment",
    "slug": "advanced-webhooks-assessment",
    "description": "Test your knowledge and application skills on webhooks with this comprehensive assessment.",
    "tes_card_image_url": "/assets/images/intro-to-webhooks.png",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "payment_type": "paid",
    "created_at": "2024-02-14T21:52:13.530Z",
    "instructor": {
      "id": 890789,
      "first_name": "Alex",
      "last_name": "Smith",
      "bio": "Senior Developer and Educator"
    }
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'test.deleted',
    display_name => 'Test Deleted',
    description => 'Fires when a test is deleted.',
    source => 'braincert',
    resource => 'assessment', action => 'deleted',
    source_table => 'lms.tests', builder => 'lms.test_payload(bigint)',
    operations => '{delete}',
    sample_body => $json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "assessment",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Assessment",
    "slug": "advanced-webhooks-assessment",
    "description": "Test your knowledge and application skills on webhooks with this comprehensive assessment.",
    "tes_card_image_url": "/assets/images/intro-to-webhooks.png",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "payment_type": "paid",
    "created_at": "2024-02-14T21:52:13.530Z",
    "instructor": {
      "id": 890789,
      "first_name": "Alex",
      "last_name": "Smith",
      "bio": "Senior Developer and Educator"
    }
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'live_class.created',
    display_name => 'Live Class Created',
    description => 'Fires when a live class is inserted.',
    source => 'braincert',
    resource => 'virtual classroom', action => 'created',
    source_table => 'lms.live_classes', builder => 'lms.live_class_payload(bigint)',
    sample_body => $json${
  "id": "02FJ48M9467893RFVEBKD3YWWL",
  "resource": "virtual classroom",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "class_id": 202223,
    "name": "Interactive Webhooks Workshop",
    "slug": "interactive-webhooks-workshop",
    "description": "Join us for a live, interactive workshop on webhooks, where you'll learn the basics and advanced techniques through real-world applications.",
    "datacenter": "New York",
    "class_type": "One-time",
    "attendee_limit": 100,
    "scheduled_date": "2024-03-01",
    "scheduled_time": "15:00:00",
    "instructors": [
      {
        "id": 891011,
        "first_name": "Jordan",
        "last_name": "Casey"
      },
      {
        "id": 891012,
        "first_name": "Alex",
        "last_name": "Taylor"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'live_class.updated',
    display_name => 'Live Class Updated',
    description => 'Fires when a live class really changes.',
    source => 'braincert',
    resource => 'virtual classroom', action => 'updated',
    source_table => 'lms.live_classes', builder => 'lms.live_class_payload(bigint)',
    operations => '{update}',
    sample_body => $json${
  "id": "02FJ48M9467893RFVEBKD3YWWL",
  "resource": "virtual classroom",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "class_id": 202223,
    "name": "Interactive Webhooks Workshop",
    "slug": "interactive-webhooks-workshop",
    "description": "Join us for a live, interactive workshop on webhooks, where you'll learn the basics and advanced techniques through real-world applications.",
    "datacenter": "New York",
    "class_type": "One-time",
    "attendee_limit": 100,
    "scheduled_date": "2024-03-01",
    "scheduled_time": "15:00:00",
    "instructors": [
      {
        "id": 891011,
        "first_name": "Jordan",
        "last_name": "Casey"
      },
      {
        "id": 891012,
        "first_name": "Alex",
        "last_name": "Taylor"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'live_class.deleted',
    display_name => 'Live Class Deleted',
    description => 'Fires when a live class is deleted.',
    source => 'braincert',
    resource => 'virtual classroom', action => 'deleted',
    source_table => 'lms.live_classes', builder => 'lms.live_class_payload(bigint)',
    operations => '{delete}',
    sample_body => $json${
  "id": "02FJ48M9467893RFVEBKD3YWWL",
  "resource": "virtual classroom",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "class_id": 202223,
    "name": "Interactive Webhooks Workshop",
    "slug": "interactive-webhooks-workshop",
    "description": "Join us for a live, interactive workshop on webhooks, where you'll learn the basics and advanced techniques through real-world applications.",
    "datacenter": "New York",
    "class_type": "One-time",
    "attendee_limit": 100,
    "scheduled_date": "2024-03-01",
    "scheduled_time": "15:00:00",
    "instructors": [
      {
        "id": 891011,
        "first_name": "Jordan",
        "last_name": "Casey"
      },
      {
        "id": 891012,
        "first_name": "Alex",
        "last_name": "Taylor"
      }
    ]
  }
}$json$);
