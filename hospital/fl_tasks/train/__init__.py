"""Federated training: SGD logistic regression, FedAvg weighted by each site's training samples."""
