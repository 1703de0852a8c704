-- A seeded user enrolls in a course: 20,000 users and 2,000 courses, so that
-- nearly every transaction inserts (ON CONFLICT skips a pair enrolled before).
\set u random(1, 20000)
\set c random(1, 2000)
INSERT INTO lms.course_enrollments (user_id, course_id, activated_at, started_at)
SELECT u.id, c.id, now(), now() FROM lms.users u, lms.courses c
 WHERE u.email = 'seed' || :u || '@bench.example' AND c.slug = 'course-' || :c
ON CONFLICT DO NOTHING;
