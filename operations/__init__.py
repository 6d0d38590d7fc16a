"""Running past one process: shards, leases, message claims, health and metrics (issue 25)."""
