-- flareflow warehouse, version 3: the champion/challenger decision taken for each model version.
-- role: 'champion' if the version took the registry's `champion` alias when it was registered,
-- 'challenger' if it did not (promotion_reason says why); NULL: not decided yet.
-- previous_champion: the calendar version holding the alias when the decision was taken (NULL: none).
-- decided_at: the warehouse clock under the promotion lock, so it orders the decisions of a model.
ALTER TABLE model_versions
    ADD COLUMN role              text CHECK (role IN ('champion', 'challenger')),
    ADD COLUMN promotion_reason  text,
    ADD COLUMN validation_auc    double precision,
    ADD COLUMN previous_champion text,
    ADD COLUMN decided_at        timestamptz;

-- the views expanded m.* when they were created: rebuild them to show the new columns
DROP MATERIALIZED VIEW dashboard_models;
CREATE MATERIALIZED VIEW dashboard_models AS
SELECT r.data_interval_start, r.sites, m.* FROM model_versions m JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_models_key ON dashboard_models (run_id);

DROP MATERIALIZED VIEW dashboard_runs;
CREATE MATERIALIZED VIEW dashboard_runs AS
SELECT r.run_id, r.dag_id, r.data_month, r.data_interval_start, r.data_interval_end, r.config_fingerprint,
       r.sites, r.started_at, r.finished_at,
       m.calendar_version, m.role, m.promotion_reason, m.validation_auc
FROM latest_runs r LEFT JOIN model_versions m USING (run_id);
CREATE UNIQUE INDEX dashboard_runs_run_id ON dashboard_runs (run_id);
CREATE UNIQUE INDEX dashboard_runs_data_month ON dashboard_runs (data_month);
