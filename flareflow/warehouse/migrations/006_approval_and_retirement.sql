-- flareflow warehouse, version 6: approval before promotion, and versions retired by a re-run.
--
-- approval (mlflow.promotion: approval): 'awaiting' while a version that passed the champion rule waits
-- for a person (role is NULL until then), then 'approved' (role champion), 'rejected' or 'timed_out'
-- (role challenger; promotion_reason says who and why). NULL: promoted automatically.
-- approval_by: the Airflow user who answered (NULL for a timeout).
--
-- A re-run of an Airflow run that trains a different model registers a new version and retires the one
-- it replaces: retired_at, retired_reason and replaced_by (the new calendar version) are set and the row
-- stays, so a run has at most one live version; every view shows live versions only.
ALTER TABLE model_versions
    ADD COLUMN approval       text CHECK (approval IN ('awaiting', 'approved', 'rejected', 'timed_out')),
    ADD COLUMN approval_by    text,
    ADD COLUMN retired_at     timestamptz,
    ADD COLUMN retired_reason text,
    ADD COLUMN replaced_by    text;
ALTER TABLE model_versions DROP CONSTRAINT model_versions_pkey;
ALTER TABLE model_versions ADD PRIMARY KEY (registered_model, mlflow_version);
CREATE UNIQUE INDEX model_versions_live_per_run ON model_versions (run_id, registered_model)
    WHERE retired_at IS NULL;

-- the views expanded m.* when they were created: rebuild them with the new columns, live versions only
DROP MATERIALIZED VIEW dashboard_models;
CREATE MATERIALIZED VIEW dashboard_models AS
SELECT r.data_interval_start, r.sites, m.*
FROM model_versions m JOIN latest_runs r USING (run_id)
WHERE m.retired_at IS NULL;
CREATE UNIQUE INDEX dashboard_models_key ON dashboard_models (run_id);

DROP MATERIALIZED VIEW dashboard_runs;
CREATE MATERIALIZED VIEW dashboard_runs AS
SELECT r.run_id, r.dag_id, r.data_month, r.data_interval_start, r.data_interval_end, r.config_fingerprint,
       r.sites, r.started_at, r.finished_at,
       m.calendar_version, m.role, m.promotion_reason, m.validation_auc, m.approval
FROM latest_runs r LEFT JOIN model_versions m ON m.run_id = r.run_id AND m.retired_at IS NULL;
CREATE UNIQUE INDEX dashboard_runs_run_id ON dashboard_runs (run_id);
CREATE UNIQUE INDEX dashboard_runs_data_month ON dashboard_runs (data_month);
