-- flareflow warehouse, version 4: which hospitals a global histogram covers.
-- A site's histogram has the bins that site released (numeric features: shared edges, with neighbours
-- merged where a bin would have been small), so bins differ in width and from site to site. The global
-- histogram (site 'global') sums the sites' bins over the cuts they all kept; covers lists those sites,
-- the same on each of its bins. NULL on a site's own histogram, and on runs loaded before version 4.
ALTER TABLE feature_histograms ADD COLUMN covers text[];

-- the view expanded h.* when it was created: rebuild it to show the new column
DROP MATERIALIZED VIEW dashboard_histograms;
CREATE MATERIALIZED VIEW dashboard_histograms AS
SELECT r.data_interval_start, h.* FROM feature_histograms h JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_histograms_key ON dashboard_histograms (run_id, site, feature, bin);
