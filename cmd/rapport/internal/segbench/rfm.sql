-- RFM quintiles of every customer with at least one purchase, from the raw
-- purchases (amount is net of refunds): recency on the last purchase,
-- frequency on the number of purchases, monetary on the net sum, each cut
-- into five buckets with NTILE(5) (5 = best). The result is materialized,
-- as the segmentation service stores its scores.
CREATE UNLOGGED TABLE rfm AS
WITH f AS (
  SELECT customer_id, max(ts) AS last_purchase, count(*) AS frequency, sum(amount) AS monetary
  FROM purchases
  GROUP BY customer_id
)
SELECT customer_id,
       NTILE(5) OVER (ORDER BY last_purchase) AS r,
       NTILE(5) OVER (ORDER BY frequency) AS f,
       NTILE(5) OVER (ORDER BY monetary) AS m
FROM f;
