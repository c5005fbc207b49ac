"""The federated data check: each hospital checks its own file against the data contract, reporting counts only."""
