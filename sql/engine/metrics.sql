-- webhook_emitter: metrics for Prometheus.
--
-- Counters must only go up, and the delivery log is pruned, so the worker
-- adds each batch of outcomes to delivery_counters in the statement that
-- records them (src/worker/record.rs: exact across crashes). Gauges (in flight, backlog, oldest
-- pending) are read from the queue at scrape time.

-- Upper bounds (seconds) of the latency histogram's buckets, +Inf aside.
CREATE FUNCTION webhook.latency_buckets() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600]::double precision[];

-- A label value in the text exposition format: \, " and newline escaped.
CREATE FUNCTION webhook.prometheus_label(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN '"' || replace(replace(replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n') || '"';

-- Every metric in the Prometheus text format (version 0.0.4).
CREATE FUNCTION webhook.metrics() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH hooks AS (
        SELECT w.id, 'webhook=' || webhook.prometheus_label(w.name) || ',webhook_id="' || w.id || '"' AS labels
          FROM webhook.webhook_list w),
    counters AS (
        SELECT c.*, h.labels || ',topic=' || webhook.prometheus_label(c.topic) AS labels
          FROM webhook.delivery_counters c JOIN hooks h ON h.id = c.webhook_id),
    queue AS (
        SELECT h.labels,
               count(d.id) FILTER (WHERE d.status = 'delivering')
                 + (SELECT count(*) FROM webhook.in_flight f WHERE f.webhook_id = h.id) AS in_flight,
               count(d.id) FILTER (WHERE d.status = 'pending') AS pending,
               count(d.id) FILTER (WHERE d.status = 'failed') AS retrying,
               count(d.id) FILTER (WHERE d.status = 'held') AS held,
               count(d.id) FILTER (WHERE d.status = 'unbuilt') AS unbuilt,
               coalesce(extract(epoch FROM now() - min(d.created_at) FILTER (WHERE d.status IN ('pending', 'failed'))), 0)
                   AS oldest_pending
          FROM hooks h
          LEFT JOIN webhook.deliveries d ON d.webhook_id = h.id AND d.status IN ('delivering', 'pending', 'failed', 'held', 'unbuilt')
         GROUP BY h.id, h.labels),
    lines (family, series, ord, line) AS (
        SELECT 1, '', 0, E'# HELP webhook_deliveries_total Finished delivery attempts by outcome (failed: will be retried; dead: given up).\n# TYPE webhook_deliveries_total counter'
        UNION ALL SELECT 1, c.labels, o.ord, format('webhook_deliveries_total{%s,outcome="%s"} %s', c.labels, o.outcome, o.n)
          FROM counters c, LATERAL (VALUES (1, 'delivered', c.delivered), (2, 'failed', c.failed), (3, 'dead', c.dead)) AS o(ord, outcome, n)
        UNION ALL SELECT 2, '', 0, E'# HELP webhook_retries_total Attempts after the first.\n# TYPE webhook_retries_total counter'
        UNION ALL SELECT 2, c.labels, 1, format('webhook_retries_total{%s} %s', c.labels, c.retried) FROM counters c
        UNION ALL SELECT 3, '', 0, E'# HELP webhook_in_flight Deliveries being sent now.\n# TYPE webhook_in_flight gauge'
        UNION ALL SELECT 3, q.labels, 1, format('webhook_in_flight{%s} %s', q.labels, q.in_flight) FROM queue q
        UNION ALL SELECT 4, '', 0, E'# HELP webhook_backlog Deliveries waiting: pending (never tried), retrying (failed, due again later), held (webhook disabled), unbuilt (the builder failed; webhook.rebuild_events).\n# TYPE webhook_backlog gauge'
        UNION ALL SELECT 4, q.labels, b.ord, format('webhook_backlog{%s,state="%s"} %s', q.labels, b.state, b.n)
          FROM queue q, LATERAL (VALUES (1, 'pending', q.pending), (2, 'retrying', q.retrying), (3, 'held', q.held), (4, 'unbuilt', q.unbuilt)) AS b(ord, state, n)
        UNION ALL SELECT 5, '', 0, E'# HELP webhook_oldest_pending_age_seconds Age of the oldest delivery not yet delivered (0 when none).\n# TYPE webhook_oldest_pending_age_seconds gauge'
        UNION ALL SELECT 5, q.labels, 1, format('webhook_oldest_pending_age_seconds{%s} %s', q.labels, round(q.oldest_pending::numeric, 3))
          FROM queue q
        UNION ALL SELECT 6, '', 0, E'# HELP webhook_delivery_latency_seconds Time from queueing to a successful delivery.\n# TYPE webhook_delivery_latency_seconds histogram'
        UNION ALL SELECT 6, c.labels, b.i::int, format('webhook_delivery_latency_seconds_bucket{%s,le="%s"} %s', c.labels, b.le, coalesce(c.latency_le[b.i::int], 0))
          FROM counters c, unnest(webhook.latency_buckets()) WITH ORDINALITY AS b(le, i)
        UNION ALL SELECT 6, c.labels, 1000, format('webhook_delivery_latency_seconds_bucket{%s,le="+Inf"} %s', c.labels, c.latency_count)
          FROM counters c
        UNION ALL SELECT 6, c.labels, 1001, format('webhook_delivery_latency_seconds_sum{%s} %s', c.labels, round(c.latency_sum::numeric, 6))
          FROM counters c
        UNION ALL SELECT 6, c.labels, 1002, format('webhook_delivery_latency_seconds_count{%s} %s', c.labels, c.latency_count)
          FROM counters c)
    SELECT string_agg(line, E'\n' ORDER BY family, series, ord) || E'\n' FROM lines;
END;
COMMENT ON FUNCTION webhook.metrics IS 'Delivery metrics in the Prometheus text format: counters per webhook and topic, backlog gauges, a latency histogram.';
