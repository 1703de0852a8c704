-- webhook_emitter: the documented topics of users, groups: sign-ups, profile changes, deletions, new groups.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

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

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'user.created',
    display_name => 'User Created',
    description => 'Fires when a user is inserted.',
    source => 'braincert',
    resource => 'user', action => 'signup',
    source_table => 'lms.users', builder => 'lms.user_created_payload(bigint)',
    sample_body => $json${
  "id": "20240214103000123456789",
  "resource": "user",
  "action": "signup",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "name": "John Doe",
    "user_id": 789012,
    "email": "john.doe@example.com",
    "date_added": "2024-02-14T10:30:00.000Z",
    "avatar_url": null,
    "custom_registration_fields": [
      {
        "field_id": "school",
        "field_name": "School",
        "field_value": "University of BrainCert"
      },
      {
        "field_id": "major",
        "field_name": "Major",
        "field_value": "Computer Science"
      }
    ],
    "groups": [
      {
        "group_id": "101",
        "group_name": "Web Development Enthusiasts"
      },
      {
        "group_id": "102",
        "group_name": "Advanced Mathematics"
      }
    ],
    "roles": [
      {
        "role_id": "1",
        "role_name": "Student"
      },
      {
        "role_id": "2",
        "role_name": "Course Contributor"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'account.created',
    display_name => 'New Account Created',
    description => 'Fires when a user is inserted.',
    source => 'aom',
    source_table => 'lms.users', builder => 'lms.account_created_body(bigint)',
    sample_body => $json${
  "id": 4,
  "first_name": "John",
  "last_name": "Doe",
  "email": "johnDoe@academyofmine.com",
  "date_registered": "Aug 11, 2020 04:58 PM"
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'user.updated',
    display_name => 'User Updated',
    description => 'Fires when a user row really changes.',
    source => 'braincert',
    resource => 'user', action => 'updated',
    source_table => 'lms.users', builder => 'lms.user_payload(bigint)',
    operations => '{update}',
    sample_body => $json${
  "id": "20240214103000123456789",
  "resource": "user",
  "action": "updated",
  "tenant_id": "acme-academy",
  "domain_id": "acme-academy",
  "created_at": "2022-05-11T01:20:54.000Z",
  "timestamp": 1652232054,
  "payload": {
    "id": 2017237,
    "first_name": "John",
    "last_name": "Doe",
    "email": "john.doe@example.com",
    "roles": [
      {
        "role_id": "3",
        "role_name": "Instructor"
      }
    ],
    "custom_registration_fields": [
      {
        "field_id": "location",
        "field_name": "Location",
        "field_value": "New York"
      },
      {
        "field_id": "department",
        "field_name": "Department",
        "field_value": "Engineering"
      }
    ],
    "groups": [
      {
        "group_id": "201",
        "group_name": "Software Engineering Masters"
      },
      {
        "group_id": "202",
        "group_name": "Project Management"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'user.deleted',
    display_name => 'User Deleted',
    description => 'Fires when a user is deleted.',
    source => 'braincert',
    resource => 'user', action => 'deleted',
    source_table => 'lms.users', builder => 'lms.user_payload(bigint)',
    operations => '{delete}',
    sample_body => $json${
  "id": "20240214103000123456789",
  "resource": "user",
  "action": "deleted",
  "tenant_id": "acme-academy",
  "domain_id": "acme-academy",
  "created_at": "2022-05-11T01:20:54.000Z",
  "timestamp": 1652232054,
  "payload": {
    "id": 2017237,
    "first_name": "John",
    "last_name": "Doe",
    "email": "john.doe@example.com",
    "roles": [
      {
        "role_id": "3",
        "role_name": "Instructor"
      }
    ],
    "custom_registration_fields": [
      {
        "field_id": "location",
        "field_name": "Location",
        "field_value": "New York"
      },
      {
        "field_id": "department",
        "field_name": "Department",
        "field_value": "Engineering"
      }
    ],
    "groups": [
      {
        "group_id": "201",
        "group_name": "Software Engineering Masters"
      },
      {
        "group_id": "202",
        "group_name": "Project Management"
      }
    ]
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'group.created',
    display_name => 'Group Created',
    description => 'Fires when a group is inserted.',
    source => 'braincert',
    resource => 'group', action => 'created',
    source_table => 'lms.groups', builder => 'lms.group_payload(bigint)',
    sample_body => $json${
  "id": "03HK59P9478904RFVETKD4ZXXM",
  "resource": "group",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T15:45:00.000Z",
  "timestamp": 1707925500,
  "payload": {
    "group_id": 304050,
    "group_name": "Webhooks Enthusiasts",
    "description": "A group for individuals passionate about learning and sharing knowledge on webhooks and their applications in modern web development."
  }
}$json$);
