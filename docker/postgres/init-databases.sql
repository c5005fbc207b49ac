-- Run once by the postgres image's entrypoint when the data volume is first initialised
-- (files in /docker-entrypoint-initdb.d). The owner is POSTGRES_USER, the role every service uses.
-- Keep in step with DATABASES in plugins/flareflow/local/postgres.py.
CREATE DATABASE flareflow_airflow;    -- Airflow's metadata database
CREATE DATABASE flareflow_mlflow;     -- MLflow's tracking store and model registry
CREATE DATABASE flareflow_warehouse;  -- flareflow's results warehouse (statistics, metrics, runs)
