-- webhook_emitter: the documented topics of orders: a sale, and each payment status.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

-- Order amounts, shared by sale.new and the AOM order bodies:
--   item line      = price * quantity
--   item shipping  = shipping_charge * quantity
--   item_total     = line + shipping - discount
--   sub_total      = sum(line)                        (AOM sub_total)
--   total_amount   = max(sum(item_total) - coupons, 0)
--   total          = total_amount + service_charge   (AOM order_total)
CREATE FUNCTION lms.order_amounts(p_order_id bigint,
                                  OUT sub_total numeric, OUT total_amount numeric, OUT total numeric)
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    SELECT trim_scale(i.sub_total),
           trim_scale(greatest(i.items_total - c.coupon_total, 0)),
           trim_scale(greatest(i.items_total - c.coupon_total, 0) + o.service_charge)
    INTO sub_total, total_amount, total
    FROM lms.orders o
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(oi.price * oi.quantity), 0) AS sub_total,
               coalesce(sum(oi.price * oi.quantity + oi.shipping_charge * oi.quantity - oi.discount), 0) AS items_total
        FROM lms.order_items oi
        WHERE oi.order_id = o.id) i
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(oc.amount), 0) AS coupon_total
        FROM lms.order_coupons oc
        WHERE oc.order_id = o.id) c
    WHERE o.id = p_order_id;
END
$fn$;

-- sale.new (payload)
CREATE FUNCTION lms.sale_payload(p_order_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'order_id', o.order_code,
               'order_date', lms.iso_utc(o.created_at),
               'payment_method', o.payment_method,
               'payment_mode', o.payment_mode,
               'currency', o.currency,
               'total_amount', amt.total_amount,
               'service_charge', trim_scale(o.service_charge),
               'total', amt.total,
               'payment_status', CASE o.status
                                     WHEN 'COMPLETED' THEN 'paid'
                                     WHEN 'PENDING' THEN 'pending'
                                     WHEN 'FAILED' THEN 'failed'
                                     WHEN 'REFUNDED' THEN 'refunded'
                                 END,
               'items', (
                   SELECT coalesce(json_agg(json_build_object(
                              'type', oi.item_type,
                              'name', oi.name,
                              'price', trim_scale(oi.price),
                              'quantity', oi.quantity,
                              'shipping_charge', trim_scale(oi.shipping_charge),
                              'total_shipping_amount', trim_scale(oi.shipping_charge * oi.quantity),
                              'discount', trim_scale(oi.discount),
                              'item_total', trim_scale(oi.price * oi.quantity
                                                       + oi.shipping_charge * oi.quantity - oi.discount))
                          ORDER BY oi.id), '[]'::json)
                   FROM lms.order_items oi
                   WHERE oi.order_id = o.id),
               'user', json_build_object(
                   'email', u.email,
                   'first_name', u.first_name,
                   'customer_since', lms.iso_utc(coalesce(u.customer_since, u.created_at))))
    FROM lms.orders o
    JOIN lms.users u ON u.id = o.user_id
    CROSS JOIN LATERAL lms.order_amounts(o.id) amt
    WHERE o.id = p_order_id
    );
END
$fn$;

-- order.placed / order.failed / order.refunded / payment.pending (AOM body)
CREATE FUNCTION lms.order_body(p_order_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'id', o.id,
               'date_created', lms.aom_date(o.created_at),
               'status', o.status,
               'currency', o.currency_name,
               'order_total', amt.total,
               'sub_total', amt.sub_total,
               'transaction_ref', o.transaction_ref,
               'payment_gateway', json_build_object(
                   'id', o.payment_gateway_id,
                   'name', o.payment_gateway_name),
               'customer', json_build_object(
                   'id', u.id,
                   'first_name', u.first_name,
                   'last_name', u.last_name,
                   'email', u.email,
                   'billing_address', json_build_object(
                       'full_name', coalesce(o.billing_full_name, ''),
                       'address_line_1', coalesce(o.billing_address_line_1, ''),
                       'address_line_2', coalesce(o.billing_address_line_2, ''),
                       'city', coalesce(o.billing_city, ''),
                       'country', coalesce(o.billing_country, ''),
                       'state', coalesce(o.billing_state, ''),
                       'zipcode', coalesce(o.billing_zipcode, ''))),
               'line_items', (
                   SELECT coalesce(json_agg(json_build_object(
                              'product_id', coalesce(oi.product_id, oi.course_id, oi.test_id,
                                                     oi.bundle_id, oi.live_class_id),
                              'product_name', oi.name,
                              'quantity', oi.quantity,
                              'price_per_qty', lms.money_text(oi.price),
                              'total', lms.money_text(oi.price * oi.quantity),
                              'product_type', oi.item_type)
                          ORDER BY oi.id), '[]'::json)
                   FROM lms.order_items oi
                   WHERE oi.order_id = o.id),
               'coupons', (
                   SELECT coalesce(json_agg(json_build_object(
                              'code', oc.code,
                              'amount', lms.money_text(oc.amount))
                          ORDER BY oc.id), '[]'::json)
                   FROM lms.order_coupons oc
                   WHERE oc.order_id = o.id),
               'notes', CASE WHEN coalesce(o.notes, '') = '' THEN '[]'::json
                             ELSE json_build_array(o.notes) END)
    FROM lms.orders o
    JOIN lms.users u ON u.id = o.user_id
    CROSS JOIN LATERAL lms.order_amounts(o.id) amt
    WHERE o.id = p_order_id
    );
END
$fn$;

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'sale.new',
    display_name => 'New Sale',
    description => 'Fires when an order becomes paid.',
    source => 'braincert',
    resource => 'purchase', action => 'completed',
    source_table => 'lms.orders', builder => 'lms.sale_payload(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''COMPLETED''',
    sample_body => $json${
  "id": "20180126172320940835610",
  "resource": "purchase",
  "action": "completed",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2023-11-30T16:51:00.000Z",
  "timestamp": 1701363060,
  "payload": {
    "order_id": "ORD_ep3FVWZ9lC",
    "order_date": "2023-11-30T16:51:00.000Z",
    "payment_method": "paypal",
    "payment_mode": "card",
    "currency": "USD",
    "total_amount": 180,
    "service_charge": 0,
    "total": 180,
    "payment_status": "paid",
    "items": [
      {
        "type": "course",
        "name": "PHP course",
        "price": 100,
        "quantity": 1,
        "shipping_charge": 0,
        "total_shipping_amount": 0,
        "discount": 0,
        "item_total": 100
      },
      {
        "type": "assessment",
        "name": "Recurring payment test",
        "price": 80,
        "quantity": 1,
        "shipping_charge": 0,
        "total_shipping_amount": 0,
        "discount": 0,
        "item_total": 80
      }
    ],
    "user": {
      "email": "yasin.y@example.com",
      "first_name": "Yasin",
      "customer_since": "2011-05-28T15:41:00.000Z"
    }
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'order.placed',
    display_name => 'New Order Placed',
    description => 'Fires when an order''s payment succeeds (status COMPLETED).',
    source => 'aom',
    source_table => 'lms.orders', builder => 'lms.order_body(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''COMPLETED''',
    sample_body => $json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "COMPLETED",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "123 John St",
      "address_line_2": "Suite 309",
      "city": "New York",
      "country": "US",
      "state": "NY",
      "zipcode": "10017"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'order.failed',
    display_name => 'Order Failed',
    description => 'Fires when an order''s payment fails (status FAILED).',
    source => 'aom',
    source_table => 'lms.orders', builder => 'lms.order_body(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''FAILED''',
    sample_body => $json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "FAILED",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "123 John St",
      "address_line_2": "Suite 309",
      "city": "New York",
      "country": "US",
      "state": "NY",
      "zipcode": "10017"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'order.refunded',
    display_name => 'Order Refunded',
    description => 'Fires when an order is refunded (status REFUNDED).',
    source => 'aom',
    source_table => 'lms.orders', builder => 'lms.order_body(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''REFUNDED''',
    sample_body => $json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "REFUNDED",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "test",
      "address_line_2": "test",
      "city": "Durg",
      "country": "US",
      "state": "AL",
      "zipcode": "491001"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'payment.pending',
    display_name => 'Payment Pending',
    description => 'Fires when an order awaits payment (status PENDING).',
    source => 'aom',
    source_table => 'lms.orders', builder => 'lms.order_body(bigint)',
    operations => '{insert,update}',
    columns => '{status}',
    condition => 'NEW.status = ''PENDING''',
    sample_body => $json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "PENDING",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "123 John St",
      "address_line_2": "Suite 309",
      "city": "New York",
      "country": "US",
      "state": "NY",
      "zipcode": "10017"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$);
