-- Seed data for the write-path benchmark (loaded before any webhook exists).
INSERT INTO lms.roles (name) VALUES ('Student'), ('Instructor');
INSERT INTO lms.groups (name) VALUES ('Cohort A'), ('Cohort B'), ('Cohort C');
INSERT INTO lms.users (first_name, last_name, email)
SELECT 'Seed', 'User ' || i, 'seed' || i || '@bench.example' FROM generate_series(1, 20000) i;
INSERT INTO lms.instructors (first_name, last_name, bio) VALUES ('Alex', 'Smith', 'Educator');
INSERT INTO lms.courses (name, slug, payment_type)
SELECT 'Course ' || i, 'course-' || i, 'paid' FROM generate_series(1, 2000) i;
INSERT INTO lms.course_instructors (course_id, instructor_id)
SELECT c.id, i.id FROM lms.courses c, lms.instructors i;
