-- webhook_emitter: the documented topics of products: created, deleted.
-- Each table's builders and the definitions of the topics it emits (see
-- sql/engine/topics.sql for what a definition means; docs/topics.md is
-- generated from these definitions).

-- Builders ------------------------------------------------------------------

-- product.created / product.deleted (payload). The document shows price,
-- discount, shipping_charge and weight as strings; "id" is an extra key.
CREATE FUNCTION lms.product_payload(p_product_id bigint) RETURNS json
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    RETURN (
    SELECT json_build_object(
               'product_type', p.product_type,
               'name', p.name,
               'excerpt', p.excerpt,
               'slug', p.slug,
               'price', lms.money_text(p.price),
               'discount', lms.money_text(p.discount),
               'description', p.description,
               'shipping_option', p.shipping_option,
               'shipping_charge', lms.money_text(p.shipping_charge),
               'weight', trim_scale(p.weight)::text || ' ' || p.weight_unit,
               'banner', p.banner_url,
               'sku', coalesce(p.sku, ''),
               'track_stock', p.track_stock,
               'items_in_stock', p.items_in_stock,
               'id', p.id)
    FROM lms.products p
    WHERE p.id = p_product_id
    );
END
$fn$;

-- Definitions ---------------------------------------------------------------

SELECT webhook.define_documented_topic(
    topic => 'product.created',
    display_name => 'Product Created',
    description => 'Fires when a product is inserted.',
    source => 'braincert',
    resource => 'product', action => 'created',
    source_table => 'lms.products', builder => 'lms.product_payload(bigint)',
    sample_body => $json${
  "id": "20240301191956020665300",
  "resource": "product",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-03-01T15:19:01.924Z",
  "timestamp": 1709306341,
  "payload": {
    "product_type": "Physical product",
    "name": "Course Growing Star",
    "excerpt": "A plush star for every course graduate.",
    "slug": "https://entelyst.braincert.com/product/course-growing-star",
    "price": "49.99",
    "discount": "5.00",
    "description": "Soft plush star (20 cm) embroidered with your academy logo; ships in 3 business days.",
    "shipping_option": "Both",
    "shipping_charge": "4.50",
    "weight": "1.2 lb",
    "banner": "https://entelyst.braincert.com/media/products/course-growing-star.png",
    "sku": "CGS-0001",
    "track_stock": true,
    "items_in_stock": 0,
    "id": 42
  }
}$json$);

SELECT webhook.define_documented_topic(
    topic => 'product.deleted',
    display_name => 'Product Deleted',
    description => 'Fires when a product is deleted.',
    source => 'braincert',
    resource => 'product', action => 'deleted',
    source_table => 'lms.products', builder => 'lms.product_payload(bigint)',
    operations => '{delete}',
    sample_body => $json${
  "id": "20240301191956020665300",
  "resource": "product",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-03-01T15:19:01.924Z",
  "timestamp": 1709306341,
  "payload": {
    "product_type": "Physical product",
    "name": "Course Growing Star",
    "excerpt": "A plush star for every course graduate.",
    "slug": "https://entelyst.braincert.com/product/course-growing-star",
    "price": "49.99",
    "discount": "5.00",
    "description": "Soft plush star (20 cm) embroidered with your academy logo; ships in 3 business days.",
    "shipping_option": "Both",
    "shipping_charge": "4.50",
    "weight": "1.2 lb",
    "banner": "https://entelyst.braincert.com/media/products/course-growing-star.png",
    "sku": "CGS-0001",
    "track_stock": true,
    "items_in_stock": 0,
    "id": 42
  }
}$json$);
