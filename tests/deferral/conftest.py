"""The deferral tests share the benchmark's services and sampler: make the project's ``benchmarks`` importable."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT = str(Path(__file__).resolve().parents[2])
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)
