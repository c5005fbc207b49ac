"""The data check tests use the benchmarks' job runner (``benchmarks/_federation.py``) for a real check job."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, for ``benchmarks``
