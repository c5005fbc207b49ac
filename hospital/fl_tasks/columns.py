"""The columns of every site's data file: the contract between the research centre and the hospitals.

Kept apart from ``fl_tasks.data`` so the config schema can check feature names without importing pandas
(Airflow parses the DAG, and with it the config schema, within a time limit).
"""

from __future__ import annotations

#: Columns every site's file holds (the UCI Heart Disease layout plus the admission date).
COLUMNS: tuple[str, ...] = (
    "id", "age", "sex", "dataset", "cp", "trestbps", "chol", "fbs", "restecg", "thalch", "exang",
    "oldpeak", "slope", "ca", "thal", "num", "admission_date",
)
