-- orderd collector schema, version 2: orders are folded from the stored events by a projector,
-- after the batch is acknowledged, instead of inside each batch's transaction.
-- How far each site's events are folded into orders, order_lines and order_index.
CREATE TABLE projections (
    site_id       text PRIMARY KEY REFERENCES sites (site_id),
    projected_seq bigint NOT NULL DEFAULT 0
);
-- Up to version 1, every stored batch was folded in its own transaction.
INSERT INTO projections (site_id, projected_seq)
SELECT site_id, acked_seq FROM site_cursors;

-- How far the reports are behind the stored events, per site.
CREATE VIEW report_lag AS
SELECT c.site_id, c.acked_seq, p.projected_seq, c.acked_seq - p.projected_seq AS pending_events
FROM site_cursors c JOIN projections p USING (site_id);
