"""Write the second dataset: three invented hospitals' patients and whether each came back within 30 days.

Every value is simulated (seeded, so the file is the same on every machine); no person is behind any
row. The data has a real signal, from a logistic model over the features below, so a logistic
regression learns it (pooled test AUC about 0.8). It differs from the demo's layout on purpose:

- hospital (the site column): Lakeside Medical Center, Hillcrest Hospital, St. Mary's Clinic
- patient_id (record id), visit_date (the date column, day first: 14/03/2026), 2025-01 … 2026-06
- age, bmi, systolic_bp, hba1c: numbers; bmi, systolic_bp and hba1c have empty cells (missing)
- smoker, diabetes: 0/1
- admission_type: integer codes 1 (emergency), 2 (urgent), 3 (elective)
- ward: medical, surgical, cardiology
- referrer: a referring practice's code (an extra column: many values, no feature)
- readmitted_30d: the label, 1 = readmitted within 30 days

    .venv/bin/python data/synthetic-readmissions/generate.py    # rewrites readmissions.csv
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "readmissions.csv"
SEED = 20260301
FIRST_VISIT, LAST_VISIT = date(2025, 1, 1), date(2026, 6, 30)
#: hospital -> (patients, mean age, the hospital's own shift of the log-odds)
HOSPITALS = {
    "Lakeside Medical Center": (480, 66, 0.15),
    "Hillcrest Hospital": (400, 58, -0.10),
    "St. Mary's Clinic": (320, 62, 0.0),
}
ADMISSION_EFFECT = {1: 0.7, 2: 0.0, 3: -0.8}
WARD_EFFECT = {"medical": 0.0, "surgical": -0.25, "cardiology": 0.35}
MISSING_SHARE = {"bmi": 0.08, "systolic_bp": 0.05, "hba1c": 0.12}


def hospital_records(rng: np.random.Generator, hospital: str, first_id: int) -> pd.DataFrame:
    """Return one hospital's simulated patients.

    :param rng: the random generator
    :param hospital: the hospital's name
    :param first_id: the first patient id
    """
    n, mean_age, shift = HOSPITALS[hospital]
    age = np.clip(rng.normal(mean_age, 12, n), 18, 95).round()
    bmi = np.clip(rng.normal(28, 5, n), 16, 55).round(1)
    systolic = np.clip(rng.normal(132, 18, n), 85, 210).round()
    diabetes = (rng.random(n) < 0.25).astype(int)
    hba1c = np.clip(rng.normal(5.6 + 1.6 * diabetes, 0.7, n), 4.0, 13.0).round(1)
    smoker = (rng.random(n) < 0.22).astype(int)
    admission = rng.choice([1, 2, 3], size=n, p=[0.45, 0.25, 0.30])
    ward = rng.choice(list(WARD_EFFECT), size=n, p=[0.5, 0.3, 0.2])
    logit = (-1.5 + shift + 0.055 * (age - 60) + 0.08 * (bmi - 28) + 0.018 * (systolic - 132)
             + 0.45 * (hba1c - 6.0) + 0.8 * smoker + 0.5 * diabetes
             + np.vectorize(ADMISSION_EFFECT.get)(admission) + np.vectorize(WARD_EFFECT.get)(ward))
    readmitted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    days = (LAST_VISIT - FIRST_VISIT).days + 1
    visits = [FIRST_VISIT + timedelta(days=int(d)) for d in rng.integers(0, days, n)]
    frame = pd.DataFrame({
        "patient_id": np.arange(first_id, first_id + n),
        "hospital": hospital,
        "visit_date": [v.strftime("%d/%m/%Y") for v in visits],
        "age": age.astype(int), "bmi": bmi, "systolic_bp": systolic.astype(int), "hba1c": hba1c,
        "smoker": smoker, "diabetes": diabetes, "admission_type": admission, "ward": ward,
        "referrer": [f"P{code:04d}" for code in rng.integers(0, 400, n)],
        "readmitted_30d": readmitted,
    })
    for column, share in MISSING_SHARE.items():  # empty cells: missing at random
        frame[column] = frame[column].astype(object).where(rng.random(n) >= share, "")
    return frame


def records(seed: int = SEED) -> pd.DataFrame:
    """Return every hospital's simulated patients, in one frame.

    :param seed: the random seed
    """
    rng = np.random.default_rng(seed)
    frames, next_id = [], 1
    for hospital in HOSPITALS:
        frames.append(hospital_records(rng, hospital, next_id))
        next_id += len(frames[-1])
    return pd.concat(frames, ignore_index=True)


def main() -> int:
    """Write ``readmissions.csv`` beside this script."""
    records().to_csv(OUTPUT, index=False, lineterminator="\n")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
