"""Builders (pure): a spec in, Kubernetes manifests out, as plain dicts."""
