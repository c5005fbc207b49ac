-- flareflow warehouse, version 7: how precise a SHAP importance is (issue 11).
-- A site explains at most shap.max_rows of its rows (a seeded sample stratified by label), so
-- mean_abs_shap estimates the mean |SHAP| over all n_rows rows from the n_samples explained.
-- standard_error: that estimate's standard error from the sampling of rows (stratified estimator with finite
-- population correction; 0 when every row was explained); the 'global' row weights each site by its n_rows.
-- Both NULL on runs loaded before version 7.
ALTER TABLE shap_importance
    ADD COLUMN standard_error double precision CHECK (standard_error >= 0),
    ADD COLUMN n_rows         integer;

-- the view expanded i.* when it was created: rebuild it to show the new columns
DROP MATERIALIZED VIEW dashboard_shap;
CREATE MATERIALIZED VIEW dashboard_shap AS
SELECT r.data_interval_start, i.* FROM shap_importance i JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_shap_key ON dashboard_shap (run_id, site, feature);
