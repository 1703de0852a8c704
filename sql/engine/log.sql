-- webhook_emitter: the webhook list, delivery log views, replay.

-- Secrets masked: what everyone (and the admin UI list) may read. The URL's
-- query string and userinfo, the extra header values and the body template
-- may hold tokens.
CREATE VIEW webhook.webhook_list AS
SELECT id, name, webhook.redact_url(url) AS url, description, topics, content_type,
       auth_username,
       CASE WHEN auth_password IS NULL THEN NULL ELSE '********' END AS auth_password,
       -- A template may hold a static credential (an API key in the body).
       CASE WHEN body_template IS NULL THEN NULL ELSE '********' END AS body_template, enabled,
       CASE WHEN signing_secret IS NULL THEN NULL ELSE 'whsec_********' END AS signing_secret,
       (SELECT coalesce(jsonb_object_agg(h.name, '********'), '{}') FROM jsonb_each(headers) AS h(name, value))
           AS headers,
       timeout_ms, disabled_reason, disabled_at, failing_since, created_at, updated_at,
       (SELECT count(*) FROM webhook.deliveries d WHERE d.webhook_id = webhooks.id AND d.status = 'held') AS held,
       CASE WHEN bearer_token IS NULL THEN NULL ELSE '********' END AS bearer_token,
       previous_signing_secret_until, rate_limit_per_second, ordering, ordering_key,
       client_certificate,
       CASE WHEN client_key IS NULL THEN NULL ELSE '********' END AS client_key,
       webhook.redact_url(oauth2_token_url) AS oauth2_token_url, oauth2_client_id,
       CASE WHEN oauth2_client_secret IS NULL THEN NULL ELSE '********' END AS oauth2_client_secret,
       oauth2_scope, filter
FROM webhook.webhooks;
COMMENT ON VIEW webhook.webhook_list IS 'Webhooks with passwords, bearer tokens, signing secrets, client keys, OAuth2 client secrets, header values, body templates and URL query strings masked; held = deliveries kept while disabled; previous_signing_secret_until = end of a rotation''s overlap; filter = only events whose body contains it.';

-- AOM's "search endpoints by event".
CREATE FUNCTION webhook.webhooks_for_topic(topic text) RETURNS SETOF webhook.webhook_list
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    IF NOT EXISTS (SELECT FROM webhook.topics c WHERE c.topic = topic) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('topic: unknown topic %L', topic), HINT = 'See SELECT topic FROM webhook.topics.';
    END IF;
    RETURN QUERY SELECT * FROM webhook.webhook_list l WHERE topic = ANY (l.topics) ORDER BY l.id;
END
$$;


-- New deliveries being sent whose outcome is not recorded yet: the worker
-- claims them as it makes them (webhook.fan_out) and inserts each into
-- webhook.deliveries once, with its outcome; until then they are listed
-- here, shaped like webhook.deliveries rows (webhook.in_flight_batches).
CREATE VIEW webhook.in_flight AS
SELECT u.id, u.event_id, u.webhook_id, 'delivering'::text AS status, 1 AS attempts,
       b.claimed_at AS last_attempt_at, b.lease_until
  FROM webhook.in_flight_batches b
 CROSS JOIN LATERAL unnest(b.deliveries, b.event_ids, b.webhook_ids) AS u(id, event_id, webhook_id)
 -- Written: the delivery of that event to that webhook exists (under
 -- another id when its own was taken: a subscriber's replicated rows).
 WHERE NOT EXISTS (SELECT FROM webhook.deliveries d WHERE d.event_id = u.event_id AND d.webhook_id = u.webhook_id);
COMMENT ON VIEW webhook.in_flight IS 'New deliveries being sent, not yet in webhook.deliveries (inserted there once, with their outcome).';

-- Failed and dead deliveries of the last 24 hours, newest first.
CREATE VIEW webhook.recent_failures AS
SELECT d.id AS delivery_id, d.webhook_id, w.name AS webhook_name, e.topic, d.event_id, d.status,
       d.attempts, d.last_status_code, d.last_error, d.last_attempt_at, d.next_attempt_at
FROM webhook.deliveries d
JOIN webhook.events e ON e.id = d.event_id AND e.slot = d.slot  -- a delivery is in its event's slot
LEFT JOIN webhook.webhooks w ON w.id = d.webhook_id
WHERE d.status IN ('failed', 'dead') AND d.last_attempt_at > now() - interval '24 hours'
ORDER BY d.last_attempt_at DESC;
COMMENT ON VIEW webhook.recent_failures IS 'Failed (will retry) and dead deliveries of the last 24 hours.';

-- Histograms of milliseconds (webhook.delivery_stats): webhook.histogram,
-- histogram_bucket, histogram_add and histogram_percentile are Rust
-- (src/stats.rs, where the buckets are defined), as is histogram_le (the
-- counters' cumulative latency buckets).

-- The sum of histograms (over hours, say).
CREATE AGGREGATE webhook.histogram_sum(bigint[]) (SFUNC = webhook.histogram_add, STYPE = bigint[]);

-- webhook.delivery_stats computed again from the delivery log kept (run by
-- the upgrade from 0.2.0, and after the log was written by hand): by the
-- UTC hour each attempt started (a delivery's last one, last_attempt_at,
-- for delivered and dead), as the worker sums them. Superuser only; the
-- worker's recording waits for it. Returns the rows written.
CREATE FUNCTION webhook.rebuild_delivery_stats() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE webhook.delivery_stats IN EXCLUSIVE MODE;
    DELETE FROM webhook.delivery_stats;
    WITH tried AS (
        SELECT d.webhook_id, date_trunc('hour', a.started_at, 'UTC') AS hour,
               count(*) AS attempts,
               count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS successes,
               max(a.started_at) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS last_success_at,
               max(a.started_at) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
                   AS last_failure_at,
               webhook.histogram(array_agg(a.duration_ms)) AS round_trip_ms,
               max(a.duration_ms) AS round_trip_max_ms
          FROM webhook.attempts a JOIN webhook.deliveries d ON d.id = a.delivery_id
         WHERE NOT d.is_test
         GROUP BY 1, 2),
    ended AS (
        SELECT d.webhook_id, date_trunc('hour', d.last_attempt_at, 'UTC') AS hour,
               count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
               count(*) FILTER (WHERE d.status = 'dead') AS dead,
               webhook.histogram(array_agg(1000 * extract(epoch FROM d.delivered_at - d.created_at)::float8)
                                 FILTER (WHERE d.status = 'delivered')) AS latency_ms,
               max(1000 * extract(epoch FROM d.delivered_at - d.created_at)::float8)
                   FILTER (WHERE d.status = 'delivered') AS latency_max_ms
          FROM webhook.deliveries d
         WHERE d.status IN ('delivered', 'dead') AND NOT d.is_test
           AND d.last_attempt_at IS NOT NULL
         GROUP BY 1, 2)
    INSERT INTO webhook.delivery_stats
        (webhook_id, hour, attempts, successes, delivered, dead, last_success_at, last_failure_at,
         round_trip_ms, round_trip_max_ms, latency_ms, latency_max_ms)
    SELECT coalesce(t.webhook_id, e.webhook_id), coalesce(t.hour, e.hour),
           coalesce(t.attempts, 0), coalesce(t.successes, 0), coalesce(e.delivered, 0), coalesce(e.dead, 0),
           t.last_success_at, t.last_failure_at,
           coalesce(t.round_trip_ms, webhook.histogram('{}')), t.round_trip_max_ms,
           coalesce(e.latency_ms, webhook.histogram('{}')), e.latency_max_ms
      FROM tried t FULL JOIN ended e ON e.webhook_id = t.webhook_id AND e.hour = t.hour;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- Per-webhook health over the current hour and the 23 before it, from
-- webhook.delivery_stats; the backlog counts read the queue's partial
-- indexes (pending and failed, ordered sequences, leased), never the log:
-- their cost grows with the backlog, not with the log kept.
CREATE VIEW webhook.webhook_health AS
SELECT w.id AS webhook_id, w.name, w.enabled, w.disabled_reason, w.failing_since,
       coalesce(s.attempts, 0) AS attempts_24h,
       coalesce(s.successes, 0) AS successes_24h,
       round(100.0 * s.successes / nullif(s.attempts, 0), 1) AS success_rate_pct,
       s.last_success_at, s.last_failure_at,
       webhook.histogram_percentile(s.round_trip_ms, 0.5, s.round_trip_max_ms) AS latency_p50_ms,
       webhook.histogram_percentile(s.round_trip_ms, 0.95, s.round_trip_max_ms) AS latency_p95_ms,
       webhook.histogram_percentile(s.round_trip_ms, 0.99, s.round_trip_max_ms) AS latency_p99_ms,
       coalesce(q.queued, 0)
     + (SELECT count(*) FROM webhook.deliveries p
         WHERE p.webhook_id = w.id AND p.order_key IS NOT NULL AND p.status IN ('pending', 'failed', 'delivering'))
     + (SELECT count(*) FROM webhook.deliveries p
         WHERE p.webhook_id = w.id AND p.status = 'delivering' AND p.order_key IS NULL)
     + (SELECT count(*) FROM webhook.in_flight f WHERE f.webhook_id = w.id) AS backlog,
       (SELECT count(*) FROM webhook.deliveries h WHERE h.webhook_id = w.id AND h.status = 'held') AS held,
       -- 0.3.0: events whose builder failed, waiting for webhook.rebuild_events.
       (SELECT count(*) FROM webhook.deliveries u WHERE u.webhook_id = w.id AND u.status = 'unbuilt') AS unbuilt
FROM webhook.webhooks w
LEFT JOIN LATERAL (
    SELECT sum(h.attempts)::bigint AS attempts, sum(h.successes)::bigint AS successes,
           max(h.last_success_at) AS last_success_at, max(h.last_failure_at) AS last_failure_at,
           webhook.histogram_sum(h.round_trip_ms) AS round_trip_ms, max(h.round_trip_max_ms) AS round_trip_max_ms
      FROM webhook.delivery_stats h
     WHERE h.webhook_id = w.id AND h.hour >= date_trunc('hour', now(), 'UTC') - interval '23 hours') s ON true
-- One pass over deliveries_due_idx for every webhook (index only).
LEFT JOIN (SELECT p.webhook_id, count(*) AS queued FROM webhook.deliveries p
            WHERE p.status IN ('pending', 'failed') AND p.order_key IS NULL
            GROUP BY p.webhook_id) q ON q.webhook_id = w.id;
COMMENT ON VIEW webhook.webhook_health IS 'Per webhook: success rate, last success/failure, round-trip percentiles (the current hour and the 23 before it, within 10% and 0.1 ms), backlog, held deliveries, and unbuilt ones (their builder failed; see webhook.rebuild_events).';

-- How late webhooks are: from the event's queueing (the writing
-- transaction) to its delivery, per webhook and hour, from
-- webhook.delivery_stats (kept as long as the log, webhook.retention).
-- webhook_health's latency is the HTTP round trip.
CREATE VIEW webhook.delivery_latency AS
SELECT s.webhook_id, w.name, s.hour, s.delivered,
       round(webhook.histogram_percentile(s.latency_ms, 0.5, s.latency_max_ms)::numeric, 1) AS p50_ms,
       round(webhook.histogram_percentile(s.latency_ms, 0.95, s.latency_max_ms)::numeric, 1) AS p95_ms,
       round(webhook.histogram_percentile(s.latency_ms, 0.99, s.latency_max_ms)::numeric, 1) AS p99_ms,
       round(s.latency_max_ms::numeric, 1) AS max_ms
  FROM webhook.delivery_stats s
  JOIN webhook.webhooks w ON w.id = s.webhook_id
 WHERE s.delivered > 0;
COMMENT ON VIEW webhook.delivery_latency IS 'Queued to delivered, per webhook and hour: deliveries, p50/p95/p99 (within 10% and 0.1 ms) and max in ms (kept as long as the log, webhook.retention).';

-- Re-queue one failed or dead delivery; the event (and its id) is unchanged.
-- SECURITY DEFINER (here and in replay): webhook_admin reads the queue
-- but changes it only through these functions.
CREATE FUNCTION webhook.redeliver(delivery_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    current_status text;
BEGIN
    SELECT d.status INTO current_status FROM webhook.deliveries d WHERE d.id = delivery_id FOR UPDATE;
    IF NOT FOUND THEN
        -- 0.3.0: a new one being sent is not written yet.
        IF NOT EXISTS (SELECT FROM webhook.in_flight f WHERE f.id = delivery_id) THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found',
                MESSAGE = format('delivery_id: delivery %s does not exist', delivery_id);
        END IF;
        current_status := 'delivering';
    END IF;
    IF current_status NOT IN ('failed', 'dead') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('delivery_id: delivery %s is %s; only failed or dead deliveries can be redelivered',
                             delivery_id, current_status);
    END IF;
    UPDATE webhook.deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL
    WHERE d.id = delivery_id;
    PERFORM webhook.wake_worker_at_commit();
END
$$;

-- Re-queue every failed or dead delivery of a webhook created in [since, until).
CREATE FUNCTION webhook.replay(webhook_id bigint, since timestamptz, until timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM webhook.webhooks w WHERE w.id = webhook_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('webhook_id: webhook %s does not exist', webhook_id);
    END IF;
    IF since IS NULL OR until IS NULL OR since >= until THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'since, until: give a time range with since < until';
    END IF;
    UPDATE webhook.deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL
    WHERE d.webhook_id = webhook_id AND d.status IN ('failed', 'dead') AND NOT d.is_test
      AND d.created_at >= since AND d.created_at < until;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM webhook.wake_worker_at_commit();
    END IF;
    RETURN n;
END
$$;
