-- webhook_emitter: the documented topics of announcements, when published.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

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

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'announcement.created',
    display_name => 'New Announcement',
    description => 'Fires when an announcement is published to its receivers.',
    source => 'aom',
    source_table => 'lms.announcements', builder => 'lms.announcement_body(bigint)',
    operations => '{insert,update}',
    columns => '{published_at}',
    condition => 'NEW.published_at IS NOT NULL',
    sample_body => $json${
  "receivers": [
    {
      "first_name": "Demo",
      "last_name": "Student",
      "name": "Demo Student",
      "email": "student@app.com"
    },
    {
      "first_name": "Site",
      "last_name": "Admin",
      "name": "Site Admin",
      "email": "ehj@academyofmine.com"
    }
  ],
  "annoucement_date": "Aug 11, 2020 02:23 PM",
  "announcement_content": "We have just released a new course on Professional Development. You can purchase it in the course catalog",
  "announcement_title": "Test announcement",
  "created_by": "Aom Staff"
}$json$);
