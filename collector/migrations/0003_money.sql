-- orderd collector schema, version 3: the box's money (issue #25), folded from its events by
-- the projector like orders. A check counts on the business day its box's Z report counts it
-- (`ledger_day`): payments with their check when it closes, refunds on the day they happen.
CREATE TABLE check_closings (
    site_id    text   NOT NULL REFERENCES sites (site_id),
    check_id   bigint NOT NULL,
    ledger_day date   NOT NULL,
    voided     boolean NOT NULL,
    covers     integer NOT NULL,
    sales      bigint NOT NULL,
    discounts  bigint NOT NULL,
    comps      bigint NOT NULL,
    voids      bigint NOT NULL,
    total      bigint NOT NULL,
    PRIMARY KEY (site_id, check_id)
);
CREATE TABLE payments (
    site_id    text    NOT NULL REFERENCES sites (site_id),
    check_id   bigint  NOT NULL,
    payment_id integer NOT NULL,
    ledger_day date    NOT NULL,
    method     text    NOT NULL,
    amount     bigint  NOT NULL,
    tip        bigint  NOT NULL,
    rounding   bigint  NOT NULL,
    PRIMARY KEY (site_id, check_id, payment_id)
);
CREATE TABLE refunds (
    site_id     text   NOT NULL REFERENCES sites (site_id),
    seq         bigint NOT NULL,
    check_id    bigint NOT NULL,
    ledger_day  date   NOT NULL,
    method      text   NOT NULL,
    amount      bigint NOT NULL,
    reason      text   NOT NULL,
    actor       text   NOT NULL,
    approved_by text   NOT NULL,
    PRIMARY KEY (site_id, seq)
);
CREATE TABLE z_reports (
    site_id      text    NOT NULL REFERENCES sites (site_id),
    number       integer NOT NULL,
    business_day date    NOT NULL,
    closed_at    timestamptz NOT NULL,
    net          bigint  NOT NULL,
    tips         bigint  NOT NULL,
    refunds      bigint  NOT NULL,
    figures      jsonb   NOT NULL,
    PRIMARY KEY (site_id, number)
);
-- Per site and business day: checks, sales, discounts, comps, voids, net, tips, refunds.
CREATE VIEW money_daily AS
SELECT d.site_id, d.business_day,
       coalesce(c.checks, 0) AS checks, coalesce(c.covers, 0) AS covers,
       coalesce(c.sales, 0) AS sales, coalesce(c.discounts, 0) AS discounts,
       coalesce(c.comps, 0) AS comps, coalesce(c.voids, 0) AS voids, coalesce(c.net, 0) AS net,
       coalesce(p.tips, 0) AS tips, coalesce(r.refunds, 0) AS refunds
FROM (SELECT site_id, ledger_day AS business_day FROM check_closings
      UNION SELECT site_id, ledger_day FROM refunds) d
LEFT JOIN (SELECT site_id, ledger_day, count(*) FILTER (WHERE NOT voided) AS checks,
                  sum(covers) FILTER (WHERE NOT voided) AS covers,
                  sum(sales) FILTER (WHERE NOT voided) AS sales,
                  sum(discounts) FILTER (WHERE NOT voided) AS discounts,
                  sum(comps) FILTER (WHERE NOT voided) AS comps, sum(voids) AS voids,
                  sum(total) FILTER (WHERE NOT voided) AS net
           FROM check_closings GROUP BY 1, 2) c
       ON c.site_id = d.site_id AND c.ledger_day = d.business_day
LEFT JOIN (SELECT site_id, ledger_day, sum(tip) AS tips FROM payments GROUP BY 1, 2) p
       ON p.site_id = d.site_id AND p.ledger_day = d.business_day
LEFT JOIN (SELECT site_id, ledger_day, sum(amount) AS refunds FROM refunds GROUP BY 1, 2) r
       ON r.site_id = d.site_id AND r.ledger_day = d.business_day;
-- Per site, business day and payment method.
CREATE VIEW payments_daily AS
SELECT site_id, ledger_day AS business_day, method, count(*) AS payments,
       sum(amount) AS amount, sum(tip) AS tips, sum(rounding) AS rounding
FROM payments GROUP BY 1, 2, 3;
