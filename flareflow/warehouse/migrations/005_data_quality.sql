-- flareflow warehouse, version 5: the federated data check's reports, counts and shares only (never values).
-- A run has rows here only if every hospital's file kept the data contract: otherwise the run stops at the
-- check, before anything is written. file_status: found | missing | empty | unreadable.
CREATE TABLE data_quality_sites (
    run_id              text      NOT NULL REFERENCES runs ON DELETE CASCADE,
    site                text      NOT NULL,
    file_status         text      NOT NULL,
    rows_in_file        bigint,
    rows_in_window      bigint,
    label_classes       integer[] NOT NULL,
    label_missing       bigint,
    duplicated_ids      bigint,
    missing_columns     text[]    NOT NULL,
    suspected_delimiter text,
    PRIMARY KEY (run_id, site)
);

-- per contract column of a site's file: values that do not parse for its kind, unknown categories (for a
-- binary column: distinct values beyond two), and the share of missing values in the run's window;
-- position: the column's place in the data contract (id, date, label, then the features in model order)
CREATE TABLE data_quality_columns (
    run_id        text    NOT NULL REFERENCES runs ON DELETE CASCADE,
    site          text    NOT NULL,
    column_name   text    NOT NULL,
    position      integer NOT NULL,
    kind          text    NOT NULL,
    unparseable   bigint  NOT NULL,
    unknown       bigint  NOT NULL,
    missing_share double precision,
    PRIMARY KEY (run_id, site, column_name)
);

-- one row per site and column of the latest successful run of each data month, with the site's totals
CREATE MATERIALIZED VIEW dashboard_data_quality AS
SELECT r.data_interval_start, c.run_id, c.site, c.column_name, c.position, c.kind, c.unparseable, c.unknown,
       c.missing_share, s.file_status, s.rows_in_file, s.rows_in_window, s.label_classes, s.label_missing, s.duplicated_ids
FROM data_quality_columns c
JOIN data_quality_sites s USING (run_id, site)
JOIN latest_runs r USING (run_id);
CREATE UNIQUE INDEX dashboard_data_quality_key ON dashboard_data_quality (run_id, site, column_name);
