-- webhook_emitter: the LMS data model the webhook payloads are built from.
--
-- Every table lives in schema "lms". Keys are bigint identity columns, link
-- tables cascade on delete of either side, every column a payload join uses
-- is indexed. Text columns that a vendor document shows as a string are
-- NOT NULL (usually DEFAULT '') so a payload never carries null where the
-- document promises a string; the few documented nullable values
-- (avatar_url, transaction_ref, manual_scoring) stay nullable.
-- See docs/lms.md for the topic mapping.
--
-- These tables hold the installation's data, not the extension's: they are
-- created here only when schema lms does not exist yet, and released from
-- the extension at once. So DROP EXTENSION never drops them (their triggers
-- go with CASCADE), pg_dump dumps them like any application table, and a
-- restore (which creates schema lms before CREATE EXTENSION) or a CREATE
-- EXTENSION after a DROP keeps the tables that are there.

DO $lms$
DECLARE
    member record;
BEGIN
    IF pg_catalog.to_regnamespace('lms') IS NOT NULL THEN
        RETURN;  -- restoring a dump, or reinstalling over existing data
    END IF;

    CREATE SCHEMA lms;

    COMMENT ON SCHEMA lms IS 'LMS data model; writes to these tables emit webhook events (see docs/lms.md)';

    -- A Citus worker node gets the schema without tables, as a restore
    -- does: the tables are the coordinator's, and Citus brings them here
    -- if it distributes the schema (citus_schema_distribute('lms')).
    IF webhook.citus_node_role() = 'worker' THEN
        ALTER EXTENSION webhook_emitter DROP SCHEMA lms;
        RETURN;
    END IF;

    -- ---------------------------------------------------------------------------
    -- People, roles, groups, registration fields
    -- ---------------------------------------------------------------------------

    CREATE TABLE lms.users (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        first_name     text        NOT NULL,
        last_name      text        NOT NULL DEFAULT '',
        email          text        NOT NULL,
        avatar_url     text,
        customer_since timestamptz,
        created_at     timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT users_email_key UNIQUE (email),
        CONSTRAINT users_email_check CHECK (position('@' IN email) > 1),
        CONSTRAINT users_first_name_check CHECK (btrim(first_name) <> '')
    );

    CREATE TABLE lms.roles (
        id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE
    );

    CREATE TABLE lms.user_roles (
        user_id bigint NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        role_id bigint NOT NULL REFERENCES lms.roles (id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, role_id)
    );
    CREATE INDEX user_roles_role_id_idx ON lms.user_roles (role_id);

    CREATE TABLE lms.groups (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name        text        NOT NULL UNIQUE,
        description text        NOT NULL DEFAULT '',
        created_at  timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE lms.user_groups (
        user_id  bigint NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        group_id bigint NOT NULL REFERENCES lms.groups (id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, group_id)
    );
    CREATE INDEX user_groups_group_id_idx ON lms.user_groups (group_id);

    CREATE TABLE lms.registration_fields (
        field_id   text    PRIMARY KEY CHECK (field_id ~ '^[a-z][a-z0-9_]*$'),
        field_name text    NOT NULL,
        position   integer NOT NULL DEFAULT 0
    );

    CREATE TABLE lms.user_registration_values (
        user_id  bigint NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        field_id text   NOT NULL REFERENCES lms.registration_fields (field_id) ON DELETE CASCADE ON UPDATE CASCADE,
        value    text   NOT NULL,
        PRIMARY KEY (user_id, field_id)
    );
    CREATE INDEX user_registration_values_field_id_idx ON lms.user_registration_values (field_id);

    -- Instructors are people who teach; user_id links one to a login when there is one.
    CREATE TABLE lms.instructors (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id    bigint UNIQUE REFERENCES lms.users (id) ON DELETE SET NULL,
        first_name text   NOT NULL,
        last_name  text   NOT NULL DEFAULT '',
        bio        text   NOT NULL DEFAULT ''
    );

    -- ---------------------------------------------------------------------------
    -- Catalog: courses, bundles, tests, live classes, products
    -- ---------------------------------------------------------------------------

    CREATE TABLE lms.courses (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name           text        NOT NULL,
        slug           text        NOT NULL UNIQUE,
        subtitle       text        NOT NULL DEFAULT '',
        description    text        NOT NULL DEFAULT '',
        card_image_url text        NOT NULL DEFAULT '',
        payment_type   text        NOT NULL DEFAULT 'free' CHECK (payment_type IN ('free', 'paid')),
        created_at     timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE lms.course_instructors (
        course_id     bigint  NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        instructor_id bigint  NOT NULL REFERENCES lms.instructors (id) ON DELETE CASCADE,
        position      integer NOT NULL DEFAULT 0,
        PRIMARY KEY (course_id, instructor_id)
    );
    CREATE INDEX course_instructors_instructor_id_idx ON lms.course_instructors (instructor_id);

    CREATE TABLE lms.bundles (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name           text        NOT NULL,
        slug           text        NOT NULL UNIQUE,
        description    text        NOT NULL DEFAULT '',
        card_image_url text        NOT NULL DEFAULT '',
        payment_type   text        NOT NULL DEFAULT 'paid' CHECK (payment_type IN ('free', 'paid')),
        created_at     timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE lms.bundle_courses (
        bundle_id bigint  NOT NULL REFERENCES lms.bundles (id) ON DELETE CASCADE,
        course_id bigint  NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        position  integer NOT NULL DEFAULT 0,
        PRIMARY KEY (bundle_id, course_id)
    );
    CREATE INDEX bundle_courses_course_id_idx ON lms.bundle_courses (course_id);

    CREATE TABLE lms.tests (
        id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name               text          NOT NULL,
        slug               text          NOT NULL UNIQUE,
        description        text          NOT NULL DEFAULT '',
        card_image_url     text          NOT NULL DEFAULT '',
        scoring_type       text          NOT NULL DEFAULT 'standard'
                           CHECK (scoring_type IN ('adaptive', 'standard', 'partial credit')),
        time_limit_minutes integer       CHECK (time_limit_minutes > 0),  -- null: no limit
        passing_score      numeric(6, 2) NOT NULL DEFAULT 0 CHECK (passing_score >= 0),
        open_ended         boolean       NOT NULL DEFAULT false,
        payment_type       text          NOT NULL DEFAULT 'free' CHECK (payment_type IN ('free', 'paid')),
        instructor_id      bigint        NOT NULL REFERENCES lms.instructors (id),
        created_at         timestamptz   NOT NULL DEFAULT now()
    );
    CREATE INDEX tests_instructor_id_idx ON lms.tests (instructor_id);

    CREATE TABLE lms.live_classes (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name           text        NOT NULL,
        slug           text        NOT NULL UNIQUE,
        description    text        NOT NULL DEFAULT '',
        datacenter     text        NOT NULL,
        class_type     text        NOT NULL DEFAULT 'One-time' CHECK (class_type IN ('One-time', 'recurring')),
        attendee_limit integer     NOT NULL CHECK (attendee_limit > 0),
        scheduled_date date        NOT NULL,
        scheduled_time time        NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE lms.live_class_instructors (
        live_class_id bigint  NOT NULL REFERENCES lms.live_classes (id) ON DELETE CASCADE,
        instructor_id bigint  NOT NULL REFERENCES lms.instructors (id) ON DELETE CASCADE,
        position      integer NOT NULL DEFAULT 0,
        PRIMARY KEY (live_class_id, instructor_id)
    );
    CREATE INDEX live_class_instructors_instructor_id_idx ON lms.live_class_instructors (instructor_id);

    CREATE TABLE lms.products (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        product_type    text           NOT NULL DEFAULT 'Physical product'
                        CHECK (product_type IN ('Physical product', 'Digital product')),
        name            text           NOT NULL,
        excerpt         text           NOT NULL DEFAULT '',
        slug            text           NOT NULL UNIQUE,
        price           numeric(12, 2) NOT NULL CHECK (price >= 0),
        discount        numeric(12, 2) NOT NULL DEFAULT 0 CHECK (discount >= 0 AND discount <= price),
        description     text           NOT NULL DEFAULT '',
        shipping_option text           NOT NULL DEFAULT 'None'
                        CHECK (shipping_option IN ('None', 'Shipping', 'Pickup', 'Both')),
        shipping_charge numeric(12, 2) NOT NULL DEFAULT 0 CHECK (shipping_charge >= 0),
        weight          numeric(10, 3) NOT NULL DEFAULT 0 CHECK (weight >= 0),
        weight_unit     text           NOT NULL DEFAULT 'lb' CHECK (weight_unit IN ('lb', 'kg', 'oz', 'g')),
        banner_url      text           NOT NULL DEFAULT '',
        sku             text           UNIQUE,
        track_stock     boolean        NOT NULL DEFAULT false,
        items_in_stock  integer        NOT NULL DEFAULT 0 CHECK (items_in_stock >= 0),
        created_at      timestamptz    NOT NULL DEFAULT now()
    );

    -- ---------------------------------------------------------------------------
    -- Enrollments, completions, test attempts
    -- ---------------------------------------------------------------------------

    CREATE TABLE lms.course_enrollments (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id      bigint      NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        course_id    bigint      NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        activated_at timestamptz NOT NULL DEFAULT now(),
        started_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT course_enrollments_user_course_key UNIQUE (user_id, course_id)
    );
    CREATE INDEX course_enrollments_course_id_idx ON lms.course_enrollments (course_id);

    CREATE TABLE lms.test_enrollments (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id      bigint      NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        test_id      bigint      NOT NULL REFERENCES lms.tests (id) ON DELETE CASCADE,
        activated_at timestamptz NOT NULL DEFAULT now(),
        started_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT test_enrollments_user_test_key UNIQUE (user_id, test_id)
    );
    CREATE INDEX test_enrollments_test_id_idx ON lms.test_enrollments (test_id);

    CREATE TABLE lms.live_class_enrollments (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id       bigint      NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        live_class_id bigint      NOT NULL REFERENCES lms.live_classes (id) ON DELETE CASCADE,
        enrolled_at   timestamptz NOT NULL DEFAULT now(),
        status        text        NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Waitlisted', 'Cancelled')),
        CONSTRAINT live_class_enrollments_user_class_key UNIQUE (user_id, live_class_id)
    );
    CREATE INDEX live_class_enrollments_live_class_id_idx ON lms.live_class_enrollments (live_class_id);

    CREATE TABLE lms.course_completions (
        id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id                     bigint      NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        course_id                   bigint      NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        completion_date             timestamptz NOT NULL DEFAULT now(),
        certificate_issued          boolean     NOT NULL DEFAULT false,
        certificate_expires         boolean     NOT NULL DEFAULT false,
        certificate_expiration_date timestamptz,
        CONSTRAINT course_completions_user_course_key UNIQUE (user_id, course_id),
        CONSTRAINT course_completions_expiry_check CHECK (
            (certificate_expires AND certificate_issued AND certificate_expiration_date IS NOT NULL)
            OR (NOT certificate_expires AND certificate_expiration_date IS NULL))
    );
    CREATE INDEX course_completions_course_id_idx ON lms.course_completions (course_id);

    -- One row per attempt; completed_at set (on insert or later) means "completed".
    CREATE TABLE lms.test_attempts (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id         bigint        NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        test_id         bigint        NOT NULL REFERENCES lms.tests (id) ON DELETE CASCADE,
        started_at      timestamptz   NOT NULL DEFAULT now(),
        completed_at    timestamptz,
        final_score     numeric(6, 2) CHECK (final_score >= 0),
        total_questions integer       NOT NULL DEFAULT 0 CHECK (total_questions >= 0),
        correct_count   integer       NOT NULL DEFAULT 0 CHECK (correct_count >= 0),
        incorrect_count integer       NOT NULL DEFAULT 0 CHECK (incorrect_count >= 0),
        manual_scoring  text          CHECK (manual_scoring IN ('pending', 'completed')),
        CONSTRAINT test_attempts_counts_check CHECK (correct_count + incorrect_count <= total_questions),
        CONSTRAINT test_attempts_completed_check CHECK (
            completed_at IS NULL OR (final_score IS NOT NULL AND completed_at >= started_at))
    );
    CREATE INDEX test_attempts_user_id_idx ON lms.test_attempts (user_id);
    CREATE INDEX test_attempts_test_id_idx ON lms.test_attempts (test_id);

    -- ---------------------------------------------------------------------------
    -- Orders
    -- ---------------------------------------------------------------------------

    CREATE TABLE lms.orders (
        id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        order_code             text           NOT NULL UNIQUE
                               DEFAULT ('ORD_' || substr(md5(random()::text || clock_timestamp()::text), 1, 10)),
        user_id                bigint         NOT NULL REFERENCES lms.users (id),
        status                 text           NOT NULL DEFAULT 'PENDING'
                               CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'REFUNDED')),
        currency               text           NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
        currency_name          text           NOT NULL DEFAULT 'United States (US) dollar',
        payment_gateway_id     text           NOT NULL DEFAULT 'Unknown',
        payment_gateway_name   text           NOT NULL DEFAULT 'Manual order',
        payment_method         text           NOT NULL DEFAULT 'manual',
        payment_mode           text           NOT NULL DEFAULT 'manual',
        transaction_ref        text,
        service_charge         numeric(12, 2) NOT NULL DEFAULT 0 CHECK (service_charge >= 0),
        billing_full_name      text,
        billing_address_line_1 text,
        billing_address_line_2 text,
        billing_city           text,
        billing_country        text,
        billing_state          text,
        billing_zipcode        text,
        notes                  text,
        created_at             timestamptz    NOT NULL DEFAULT now(),
        CONSTRAINT orders_order_code_check CHECK (order_code ~ '^ORD_[A-Za-z0-9]+$')
    );
    CREATE INDEX orders_user_id_idx ON lms.orders (user_id);

    -- name/price are a snapshot at purchase time; the catalog reference is kept
    -- while the catalog row exists.
    CREATE TABLE lms.order_items (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        order_id        bigint         NOT NULL REFERENCES lms.orders (id) ON DELETE CASCADE,
        item_type       text           NOT NULL CHECK (item_type IN ('course', 'assessment', 'bundle', 'live_class', 'product')),
        course_id       bigint REFERENCES lms.courses (id) ON DELETE SET NULL,
        test_id         bigint REFERENCES lms.tests (id) ON DELETE SET NULL,
        bundle_id       bigint REFERENCES lms.bundles (id) ON DELETE SET NULL,
        live_class_id   bigint REFERENCES lms.live_classes (id) ON DELETE SET NULL,
        product_id      bigint REFERENCES lms.products (id) ON DELETE SET NULL,
        name            text           NOT NULL,
        price           numeric(12, 2) NOT NULL CHECK (price >= 0),
        quantity        integer        NOT NULL DEFAULT 1 CHECK (quantity > 0),
        shipping_charge numeric(12, 2) NOT NULL DEFAULT 0 CHECK (shipping_charge >= 0),
        discount        numeric(12, 2) NOT NULL DEFAULT 0 CHECK (discount >= 0),
        CONSTRAINT order_items_reference_check CHECK (
            num_nonnulls(course_id, test_id, bundle_id, live_class_id, product_id) <= 1
            AND (course_id IS NULL OR item_type = 'course')
            AND (test_id IS NULL OR item_type = 'assessment')
            AND (bundle_id IS NULL OR item_type = 'bundle')
            AND (live_class_id IS NULL OR item_type = 'live_class')
            AND (product_id IS NULL OR item_type = 'product')),
        CONSTRAINT order_items_discount_max_check CHECK (discount <= price * quantity + shipping_charge * quantity)
    );
    CREATE INDEX order_items_order_id_idx ON lms.order_items (order_id);
    CREATE INDEX order_items_course_id_idx ON lms.order_items (course_id);
    CREATE INDEX order_items_test_id_idx ON lms.order_items (test_id);
    CREATE INDEX order_items_bundle_id_idx ON lms.order_items (bundle_id);
    CREATE INDEX order_items_live_class_id_idx ON lms.order_items (live_class_id);
    CREATE INDEX order_items_product_id_idx ON lms.order_items (product_id);

    CREATE TABLE lms.order_coupons (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        order_id bigint         NOT NULL REFERENCES lms.orders (id) ON DELETE CASCADE,
        code     text           NOT NULL,
        amount   numeric(12, 2) NOT NULL CHECK (amount >= 0),
        CONSTRAINT order_coupons_order_code_key UNIQUE (order_id, code)
    );

    -- ---------------------------------------------------------------------------
    -- Course content: quizzes, assignments, discussions
    -- ---------------------------------------------------------------------------

    CREATE TABLE lms.quizzes (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        course_id  bigint      NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        name       text        NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX quizzes_course_id_idx ON lms.quizzes (course_id);

    CREATE TABLE lms.quiz_submissions (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        quiz_id      bigint        NOT NULL REFERENCES lms.quizzes (id) ON DELETE CASCADE,
        user_id      bigint        NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        score        numeric(6, 2) CHECK (score >= 0),
        submitted_at timestamptz   NOT NULL DEFAULT now()
    );
    CREATE INDEX quiz_submissions_quiz_id_idx ON lms.quiz_submissions (quiz_id);
    CREATE INDEX quiz_submissions_user_id_idx ON lms.quiz_submissions (user_id);

    CREATE TABLE lms.assignments (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        course_id  bigint      NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        name       text        NOT NULL,
        max_grade  numeric(6, 2) NOT NULL DEFAULT 100 CHECK (max_grade > 0),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX assignments_course_id_idx ON lms.assignments (course_id);

    CREATE TABLE lms.assignment_submissions (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        assignment_id bigint        NOT NULL REFERENCES lms.assignments (id) ON DELETE CASCADE,
        user_id       bigint        NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        content       text          NOT NULL DEFAULT '',
        status        text          NOT NULL DEFAULT 'submitted' CHECK (status IN ('submitted', 'evaluated', 'rejected')),
        grade         numeric(6, 2) CHECK (grade >= 0),
        feedback      text,
        submitted_at  timestamptz   NOT NULL DEFAULT now(),
        evaluated_at  timestamptz,
        evaluated_by  bigint REFERENCES lms.instructors (id) ON DELETE SET NULL,
        CONSTRAINT assignment_submissions_evaluated_check CHECK (
            (status = 'submitted' AND evaluated_at IS NULL AND grade IS NULL)
            OR (status <> 'submitted' AND evaluated_at IS NOT NULL))
    );
    CREATE INDEX assignment_submissions_assignment_id_idx ON lms.assignment_submissions (assignment_id);
    CREATE INDEX assignment_submissions_user_id_idx ON lms.assignment_submissions (user_id);
    CREATE INDEX assignment_submissions_evaluated_by_idx ON lms.assignment_submissions (evaluated_by);

    CREATE TABLE lms.discussions (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        course_id  bigint      NOT NULL REFERENCES lms.courses (id) ON DELETE CASCADE,
        name       text        NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX discussions_course_id_idx ON lms.discussions (course_id);

    CREATE TABLE lms.discussion_posts (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        discussion_id  bigint      NOT NULL REFERENCES lms.discussions (id) ON DELETE CASCADE,
        user_id        bigint      NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        parent_post_id bigint REFERENCES lms.discussion_posts (id) ON DELETE CASCADE,
        body           text        NOT NULL,
        posted_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX discussion_posts_discussion_id_idx ON lms.discussion_posts (discussion_id);
    CREATE INDEX discussion_posts_user_id_idx ON lms.discussion_posts (user_id);
    CREATE INDEX discussion_posts_parent_post_id_idx ON lms.discussion_posts (parent_post_id);

    -- ---------------------------------------------------------------------------
    -- Announcements
    -- ---------------------------------------------------------------------------

    -- published_at null = draft; setting it publishes the announcement.
    CREATE TABLE lms.announcements (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        title        text        NOT NULL,
        content      text        NOT NULL DEFAULT '',
        created_by   bigint      NOT NULL REFERENCES lms.users (id),
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    );
    CREATE INDEX announcements_created_by_idx ON lms.announcements (created_by);

    CREATE TABLE lms.announcement_receivers (
        announcement_id bigint NOT NULL REFERENCES lms.announcements (id) ON DELETE CASCADE,
        user_id         bigint NOT NULL REFERENCES lms.users (id) ON DELETE CASCADE,
        PRIMARY KEY (announcement_id, user_id)
    );
    CREATE INDEX announcement_receivers_user_id_idx ON lms.announcement_receivers (user_id);

    -- Release what was just created: application data, not extension objects.
    FOR member IN
        SELECT c.oid::regclass AS rel, c.relkind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'webhook_emitter')
           AND c.relnamespace = 'lms'::regnamespace AND c.relkind IN ('r', 'S')
         ORDER BY c.relkind DESC
    LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION webhook_emitter DROP %s %s',
            CASE member.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, member.rel);
    END LOOP;
    ALTER EXTENSION webhook_emitter DROP SCHEMA lms;
END
$lms$;
