"""flareflow's Airflow CLI commands: ``airflow flareflow ...`` (registered through ``get_provider_info``)."""
