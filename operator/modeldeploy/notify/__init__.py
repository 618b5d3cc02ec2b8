"""Rollout notifications, the pure half: which transitions a pass made
(events.py), who asked to hear of them (subscription.py), where they go
(config.py) and what is sent (body.py). Delivery, with its queue, retries
and metrics, is kube/notifier.py's; the controller hands it the bodies after
the status write that records the transition."""

from .body import json_body, notification, slack_body
from .config import ConfigError, Endpoint, NotifyConfig, RetryPolicy, backoff_delays, load_config
from .events import (ABORTED, CANARY_STARTED, CHECK_FAILED, EVENTS, PAUSED, PROMOTED, ROLLED_BACK, STALLED,
                     Transition, transitions)
from .subscription import NOTIFY, NOTIFY_EVENTS, Subscription, read_subscription

__all__ = [
    "ABORTED", "CANARY_STARTED", "CHECK_FAILED", "EVENTS", "PAUSED", "PROMOTED", "ROLLED_BACK", "STALLED",
    "ConfigError", "Endpoint", "NOTIFY", "NOTIFY_EVENTS", "NotifyConfig", "RetryPolicy", "Subscription",
    "Transition", "backoff_delays", "json_body", "load_config", "notification", "read_subscription",
    "slack_body", "transitions",
]
