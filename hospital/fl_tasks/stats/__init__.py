"""Federated statistics: count, sum, mean, stddev and histograms per feature, per site and global."""
