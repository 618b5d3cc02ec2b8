"""Status derivation (pure): what the cluster shows -> the status to write."""
