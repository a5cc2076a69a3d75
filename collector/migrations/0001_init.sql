-- orderd collector schema, version 1.
-- Sites and their upload tokens (SHA-256 of a 256-bit random token; the token is shown once).
CREATE TABLE sites (
    site_id      text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    token_sha256 bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- How far each site's event log is stored: the acknowledgement the box gets.
CREATE TABLE site_cursors (
    site_id    text PRIMARY KEY REFERENCES sites (site_id),
    acked_seq  bigint NOT NULL DEFAULT 0,
    box_id     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every event of every box, exactly once per (site_id, seq).
CREATE TABLE events (
    site_id text NOT NULL,
    seq     bigint NOT NULL,
    at      timestamptz NOT NULL,
    kind    text NOT NULL,
    body    json NOT NULL,
    PRIMARY KEY (site_id, seq)
);

-- Orders as their events leave them, partitioned by month of placement (partitions are
-- created by the collector before it writes a month's first order).
CREATE TABLE orders (
    site_id      text NOT NULL,
    order_id     text NOT NULL,
    created_at   timestamptz NOT NULL,
    business_day date NOT NULL,
    number       text NOT NULL,
    order_type   text NOT NULL,
    source       text NOT NULL,
    status       text NOT NULL,
    subtotal     bigint NOT NULL,
    tax          bigint NOT NULL,
    total        bigint NOT NULL,
    currency     text NOT NULL,
    accepted_at  timestamptz,
    ready_at     timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (site_id, order_id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE order_lines (
    site_id    text NOT NULL,
    order_id   text NOT NULL,
    created_at timestamptz NOT NULL,
    line_no    int NOT NULL,
    item_id    text NOT NULL,
    name       text NOT NULL,
    quantity   int NOT NULL,
    line_total bigint NOT NULL,
    PRIMARY KEY (site_id, order_id, created_at, line_no)
) PARTITION BY RANGE (created_at);

-- Where an order lives, so status events (which carry no placement time) find its partition.
CREATE TABLE order_index (
    site_id    text NOT NULL,
    order_id   text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, order_id)
);

-- Reports. Revenue and counts leave cancelled orders out; prep time runs from accepted to ready.
CREATE VIEW site_daily AS
SELECT site_id,
       business_day,
       count(*) FILTER (WHERE status <> 'cancelled')                       AS orders,
       coalesce(sum(total) FILTER (WHERE status <> 'cancelled'), 0)::bigint AS revenue,
       count(*) FILTER (WHERE status = 'cancelled')                        AS cancelled,
       avg(extract(epoch FROM ready_at - accepted_at))
           FILTER (WHERE ready_at IS NOT NULL AND accepted_at IS NOT NULL)  AS avg_prep_secs
FROM orders
GROUP BY site_id, business_day;

CREATE VIEW item_daily AS
SELECT l.site_id,
       o.business_day,
       l.item_id,
       max(l.name)                  AS name,
       sum(l.quantity)::bigint      AS quantity,
       sum(l.line_total)::bigint    AS revenue
FROM order_lines l
JOIN orders o USING (site_id, order_id, created_at)
WHERE o.status <> 'cancelled'
GROUP BY l.site_id, o.business_day, l.item_id;
