"""The operator's notification endpoints: a YAML or JSON document the cluster
admin keeps in a Secret, mounted into the operator's pod (the operator itself
never reads Secrets through the API):

    endpoints:
      ops-webhook:
        url: https://hooks.example.com/modeldeploy
        headers: {Authorization: "Bearer s3cr3t"}
      slack:
        url: https://hooks.slack.com/services/T000/B000/XXXX
        format: slack
    retry: {maxAttempts: 5, initialDelaySeconds: 1, maxDelaySeconds: 30}
"""

from typing import Literal

import yaml
from pydantic import Field, ValidationError

from ..api.base import SpecModel
from ..backoff import capped_backoff


class ConfigError(ValueError):
    pass


class Endpoint(SpecModel):
    url: str = Field(pattern=r"^https?://\S+$")
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="One attempt's whole request, at most.")


class RetryPolicy(SpecModel):
    max_attempts: int = Field(5, ge=1, le=20)
    initial_delay_seconds: float = Field(1.0, ge=0, le=300)
    max_delay_seconds: float = Field(30.0, ge=0, le=3600)


class NotifyConfig(SpecModel):
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # Notifications waiting per endpoint; more are dropped (and counted).
    queue_size: int = Field(1000, ge=1, le=100_000)


def load_config(text: str, *, source: str = "notification config") -> NotifyConfig:
    try:
        raw = yaml.safe_load(text) or {}
        return NotifyConfig.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def backoff_delays(policy: RetryPolicy) -> tuple[float, ...]:
    """The waits between attempts: initial, doubling, capped; one fewer than
    the attempts. Their sum bounds how long a notification is retried (plus
    one timeout per attempt)."""
    return tuple(capped_backoff(policy.initial_delay_seconds, policy.max_delay_seconds, failure)
                 for failure in range(1, policy.max_attempts))
