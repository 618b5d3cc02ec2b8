"""Capped exponential back-off, the one rule every retry in the operator
follows (the reconcile queue, MLflow registry reads, notification
deliveries): the first wait, doubled after each failure, never above a cap."""
from __future__ import annotations


def capped_backoff(first: float, cap: float, attempt: int) -> float:
    """The wait after failure number `attempt` (1 for the first failure)."""
    return min(cap, first * 2 ** (max(1, attempt) - 1))
