"""Federated SHAP: each site explains the global model on its own rows; the server aggregates."""
