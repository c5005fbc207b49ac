"""Scripts that print figures about flareflow (run from the project folder, e.g. ``python benchmarks/quality.py``)."""
