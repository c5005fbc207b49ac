-- flareflow warehouse, version 1: one Airflow run's outputs, keyed by its run id.
CREATE TABLE runs (
    run_id              text PRIMARY KEY,
    dag_id              text        NOT NULL,
    data_interval_start timestamptz NOT NULL,
    data_interval_end   timestamptz NOT NULL,
    config_fingerprint  text        NOT NULL,
    sites               text[]      NOT NULL,
    status              text        NOT NULL CHECK (status IN ('running', 'success')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);

-- site = 'global' holds the federation-wide value; withheld = the privacy rules kept it back
CREATE TABLE feature_stats (
    run_id    text    NOT NULL REFERENCES runs ON DELETE CASCADE,
    site      text    NOT NULL,
    feature   text    NOT NULL,
    statistic text    NOT NULL,
    value     double precision,
    withheld  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, site, feature, statistic)
);

CREATE TABLE feature_histograms (
    run_id    text             NOT NULL REFERENCES runs ON DELETE CASCADE,
    site      text             NOT NULL,
    feature   text             NOT NULL,
    bin       integer          NOT NULL,
    low       double precision NOT NULL,
    high      double precision NOT NULL,
    count     bigint           NOT NULL,
    PRIMARY KEY (run_id, site, feature, bin)
);

CREATE TABLE training_metrics (
    run_id  text             NOT NULL REFERENCES runs ON DELETE CASCADE,
    site    text             NOT NULL,
    round   integer          NOT NULL,
    split   text             NOT NULL CHECK (split IN ('validation', 'test')),
    metric  text             NOT NULL,
    value   double precision NOT NULL,
    PRIMARY KEY (run_id, site, round, split, metric)
);

CREATE TABLE shap_importance (
    run_id        text             NOT NULL REFERENCES runs ON DELETE CASCADE,
    site          text             NOT NULL,
    feature       text             NOT NULL,
    mean_abs_shap double precision NOT NULL,
    n_samples     integer          NOT NULL,
    PRIMARY KEY (run_id, site, feature)
);

-- calendar versions: (model, year, month, n) never repeats; a re-run replaces its run's row
CREATE TABLE model_versions (
    run_id             text    PRIMARY KEY REFERENCES runs ON DELETE CASCADE,
    registered_model   text    NOT NULL,
    year               integer NOT NULL,
    month              integer NOT NULL CHECK (month BETWEEN 1 AND 12),
    n                  integer NOT NULL CHECK (n >= 1),
    calendar_version   text    NOT NULL,
    mlflow_version     text    NOT NULL,
    mlflow_run_id      text,
    config_fingerprint text    NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (registered_model, year, month, n)
);

-- every calendar number ever handed out, so a replaced version's number is never reused
CREATE TABLE calendar_numbers (
    registered_model text    NOT NULL,
    year             integer NOT NULL,
    month            integer NOT NULL,
    n                integer NOT NULL,
    run_id           text    NOT NULL,
    PRIMARY KEY (registered_model, year, month, n)
);
