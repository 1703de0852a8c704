-- A user signs up with two groups and a role, in one transaction.
\set n random(1, 9000000000000)
BEGIN;
INSERT INTO lms.users (first_name, last_name, email) VALUES ('Bench', 'User', 'u' || :n || '@bench.example');
INSERT INTO lms.user_groups (user_id, group_id)
SELECT u.id, g.id FROM lms.users u, lms.groups g
 WHERE u.email = 'u' || :n || '@bench.example' AND g.name IN ('Cohort A', 'Cohort B');
INSERT INTO lms.user_roles (user_id, role_id)
SELECT u.id, r.id FROM lms.users u, lms.roles r WHERE u.email = 'u' || :n || '@bench.example' AND r.name = 'Student';
END;
