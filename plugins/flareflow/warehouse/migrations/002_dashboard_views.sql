-- what the dashboard reads: the latest successful run of each data month.
CREATE VIEW latest_runs AS
SELECT DISTINCT ON (date_trunc('month', data_interval_start)) *
FROM runs
WHERE status = 'success'
ORDER BY date_trunc('month', data_interval_start), finished_at DESC, run_id DESC;

CREATE MATERIALIZED VIEW dashboard_feature_stats AS
SELECT r.data_interval_start, s.* FROM feature_stats s JOIN latest_runs r USING (run_id);

CREATE MATERIALIZED VIEW dashboard_histograms AS
SELECT r.data_interval_start, h.* FROM feature_histograms h JOIN latest_runs r USING (run_id);

CREATE MATERIALIZED VIEW dashboard_training AS
SELECT r.data_interval_start, t.* FROM training_metrics t JOIN latest_runs r USING (run_id);

CREATE MATERIALIZED VIEW dashboard_shap AS
SELECT r.data_interval_start, i.* FROM shap_importance i JOIN latest_runs r USING (run_id);

CREATE MATERIALIZED VIEW dashboard_models AS
SELECT r.data_interval_start, r.sites, m.* FROM model_versions m JOIN latest_runs r USING (run_id);
