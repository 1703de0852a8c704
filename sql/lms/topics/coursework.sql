-- webhook_emitter: the documented topics of test attempts, quiz and assignment submissions, discussion posts.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

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

-- assignment.submitted: the submission; assignment.evaluated / .rejected:
-- the submission plus the evaluation result.
CREATE FUNCTION lms.assignment_submitted_body(p_submission_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN lms.assignment_submission_body(p_submission_id, false);
END
$fn$;

CREATE FUNCTION lms.assignment_evaluated_body(p_submission_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN lms.assignment_submission_body(p_submission_id, true);
END
$fn$;

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'test.completed',
    display_name => 'Test Completed',
    description => 'Fires when a user completes a test.',
    source => 'braincert',
    resource => 'assessment', action => 'completed',
    source_table => 'lms.test_attempts', builder => 'lms.test_completed_payload(bigint)',
    operations => '{insert,update}',
    columns => '{completed_at}',
    condition => 'NEW.completed_at IS NOT NULL',
    sample_body => $json${
  "id": "20191029145629636106318",
  "resource": "assessment",
  "action": "completed",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:02:50.000Z",
  "timestamp": 1707944570,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Test",
    "final_score": 85,
    "passing_score": 75,
    "open_ended": "no",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "manual_scoring": "completed",
    "total_questions": 20,
    "correct_count": 17,
    "incorrect_count": 3,
    "user": {
      "id": 124567,
      "first_name": "Sam",
      "last_name": "Davis",
      "email": "sam.davis@example.com"
    },
    "attempt_id": 5511,
    "completed_at": "2024-02-14T21:02:48.120Z"
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'quiz.submitted',
    display_name => 'Submitted a Quiz',
    description => 'Fires when a quiz submission is inserted.',
    source => 'aom',
    source_table => 'lms.quiz_submissions', builder => 'lms.quiz_submission_body(bigint)',
    sample_body => $json${
  "id": 3,
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:37 PM",
  "quiz": {
    "id": 3,
    "name": "quiz 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor_name": {
    "id": 1,
    "name": "Aom Staff"
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'assignment.submitted',
    display_name => 'Submitted an assignment',
    description => 'Fires when an assignment submission is inserted.',
    source => 'aom',
    source_table => 'lms.assignment_submissions', builder => 'lms.assignment_submitted_body(bigint)',
    sample_body => $json${
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:45 PM",
  "assignment": {
    "id": "1",
    "name": "assignment 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'assignment.evaluated',
    display_name => 'Evaluated an assignment',
    description => 'Fires when a submission is graded/accepted (status becomes evaluated).',
    source => 'aom',
    source_table => 'lms.assignment_submissions', builder => 'lms.assignment_evaluated_body(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''evaluated''',
    sample_body => $json${
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:45 PM",
  "assignment": {
    "id": "1",
    "name": "assignment 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  },
  "status": "evaluated",
  "grade": 92,
  "feedback": "Clear structure and correct results. Well done!",
  "date_evaluated": "Aug 12, 2020 09:15 AM"
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'assignment.rejected',
    display_name => 'Rejected an assignment',
    description => 'Fires when a submission is rejected (status becomes rejected).',
    source => 'aom',
    source_table => 'lms.assignment_submissions', builder => 'lms.assignment_evaluated_body(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''rejected''',
    sample_body => $json${
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:45 PM",
  "assignment": {
    "id": "1",
    "name": "assignment 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  },
  "status": "rejected",
  "grade": null,
  "feedback": "The second part of the assignment is missing; please resubmit.",
  "date_evaluated": "Aug 12, 2020 09:15 AM"
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'discussion.submitted',
    display_name => 'Submitted a discussion',
    description => 'Fires when a discussion post is inserted.',
    source => 'aom',
    source_table => 'lms.discussion_posts', builder => 'lms.discussion_post_body(bigint)',
    sample_body => $json${
  "id": 3,
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "discussion": {
    "id": 6,
    "name": "Discussion Board"
  },
  "course": {
    "id": 1,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  },
  "date_submitted": "Aug 11, 2020 05:03 PM"
}$json$);
