-- webhook_emitter: the documented topics' event schemas, tightened by hand
-- where the documents and the lms tables' CHECKs say more than a sample
-- body can (src/catalog/schema.rs infers the rest): enumerations, and the
-- documented values that may be null. A rule applies to the topics its
-- pattern matches; `*.key` is that key at any depth.
WITH rule(topics, path, keywords) AS (VALUES
    ('^(course|bundle|test)\.', '*.payment_type', '{"enum": ["free", "paid"]}'),
    ('^test\.', '*.scoring_type', '{"enum": ["adaptive", "standard", "partial credit"]}'),
    ('^test\.completed$', '*.manual_scoring', '{"type": ["string", "null"], "enum": ["pending", "completed", null]}'),
    ('^live_class\.', '*.class_type', '{"enum": ["One-time", "recurring"]}'),
    ('^live_class\.enrollment$', '*.enrollment_status', '{"enum": ["Active", "Waitlisted", "Cancelled"]}'),
    ('^product\.', '*.product_type', '{"enum": ["Physical product", "Digital product"]}'),
    ('^product\.', '*.shipping_option', '{"enum": ["None", "Shipping", "Pickup", "Both"]}'),
    ('^(order|payment)\.', 'line_items[].product_type', '{"enum": ["course", "assessment", "bundle", "live_class", "product"]}'),
    ('^(order|payment)\.', 'status', '{"enum": ["PENDING", "COMPLETED", "FAILED", "REFUNDED"]}'),
    ('^(order|payment)\.', 'transaction_ref', '{"type": ["string", "null"]}'),
    ('^assignment\.(evaluated|rejected)$', 'status', '{"enum": ["submitted", "evaluated", "rejected"]}'),
    ('^user\.', '*.avatar_url', '{"type": ["string", "null"]}')
)
UPDATE webhook.topics t SET schema_overrides = r.overrides
  FROM (SELECT tp.topic, jsonb_object_agg(rule.path, rule.keywords::jsonb) AS overrides
          FROM webhook.topics tp JOIN rule ON tp.topic ~ rule.topics
         WHERE tp.builtin
         GROUP BY tp.topic) r
 WHERE t.topic = r.topic;
