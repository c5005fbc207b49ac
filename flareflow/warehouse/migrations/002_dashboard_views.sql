-- what the dashboard reads: the latest successful run of each data month.
-- Data months are calendar months in UTC, as Airflow's data intervals are (whatever the session's
-- TimeZone). A successful run always has finished_at; NULLS LAST keeps a hand-edited one from winning.
CREATE VIEW latest_runs AS
SELECT DISTINCT ON (date_trunc('month', data_interval_start, 'UTC'))
       date_trunc('month', data_interval_start, 'UTC') AS data_month, *
FROM runs
WHERE status = 'success'
ORDER BY date_trunc('month', data_interval_start, 'UTC'), finished_at DESC NULLS LAST, run_id DESC;

-- Each materialized view has a unique index on plain columns, which REFRESH ... CONCURRENTLY needs.

-- one row per data month: the run the dashboard shows for it
CREATE MATERIALIZED VIEW dashboard_runs AS
SELECT run_id, dag_id, data_month, data_interval_start, data_interval_end, config_fingerprint, sites,
       started_at, finished_at
FROM latest_runs;
CREATE UNIQUE INDEX dashboard_runs_run_id ON dashboard_runs (run_id);
CREATE UNIQUE INDEX dashboard_runs_data_month ON dashboard_runs (data_month);

CREATE MATERIALIZED VIEW dashboard_feature_stats AS
SELECT r.data_interval_start, s.* FROM feature_stats s JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_feature_stats_key ON dashboard_feature_stats (run_id, site, feature, statistic);

CREATE MATERIALIZED VIEW dashboard_histograms AS
SELECT r.data_interval_start, h.* FROM feature_histograms h JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_histograms_key ON dashboard_histograms (run_id, site, feature, bin);

CREATE MATERIALIZED VIEW dashboard_training AS
SELECT r.data_interval_start, t.* FROM training_metrics t JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_training_key ON dashboard_training (run_id, site, round, split, metric);

CREATE MATERIALIZED VIEW dashboard_shap AS
SELECT r.data_interval_start, i.* FROM shap_importance i JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_shap_key ON dashboard_shap (run_id, site, feature);

CREATE MATERIALIZED VIEW dashboard_models AS
SELECT r.data_interval_start, r.sites, m.* FROM model_versions m JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_models_key ON dashboard_models (run_id);
