"""PodDisruptionBudget: voluntary evictions (node drains) take one pod at a time."""

from typing import Any

from .labels import common_labels, owned_by
from .naming import disruption_budget_name
from .ownership import Owner, child_metadata


def build_disruption_budget(owner: Owner) -> dict[str, Any]:
    # maxUnavailable (not minAvailable) so a drain still progresses at any scale,
    # and a budget over both roles so a canary cannot be drained together with stable.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner, disruption_budget_name(owner.name), common_labels(owner.name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": owned_by(owner.name)}},
    }
