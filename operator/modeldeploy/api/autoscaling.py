"""What `spec.autoscaling` scales on (issue 14, item 3): HPA v2 metric specs
(`metrics`) passed through as written, and KEDA triggers (`keda.triggers`)
for `engine: KEDA`, which also allows `minReplicas: 0` (scale to zero).

Both are passed through to the HPA or the ScaledObject: the API server checks
their shape here (the member `type` names is set and has a `target`; a
trigger has a `type` and its `metadata`); the HPA controller and KEDA judge
the rest and say so in their own status.
"""

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import SpecModel
from .problems import FieldProblem

# HPA autoscaling/v2 MetricSpec: each type and the member field that carries it.
METRIC_MEMBERS = {
    "Resource": "resource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
    "ContainerResource": "containerResource",
}

ONE_MEMBER = ("a metric sets exactly one of resource, pods, object, external, containerResource: the one its "
              "type names (Resource: resource, Pods: pods, Object: object, External: external, "
              "ContainerResource: containerResource)")


def _member(description: str) -> Any:
    # An HPA MetricSource, passed through; only its `target` is required here
    # (declared, so the API server checks it; the rest is the HPA's).
    return Field(None, description=description, json_schema_extra={
        "type": "object",
        "properties": {"target": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        "required": ["target"],
        "x-kubernetes-preserve-unknown-fields": True,
    })


class MetricSpec(SpecModel):
    """One HPA autoscaling/v2 metric, as in a HorizontalPodAutoscaler's
    spec.metrics: `type` and the one member it names, with a `target`."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": " + ".join(f"(has(self.{m}) ? 1 : 0)" for m in METRIC_MEMBERS.values()) + " == 1 && "
                    + " && ".join(f"(self.type != '{t}' || has(self.{m}))" for t, m in METRIC_MEMBERS.items()),
                    "message": ONE_MEMBER,
                }
            ]
        }
    }

    type: Literal["Resource", "Pods", "Object", "External", "ContainerResource"]
    resource: dict[str, Any] | None = _member("type Resource: {name, target} (cpu, memory) averaged over the pods.")
    pods: dict[str, Any] | None = _member("type Pods: {metric, target}, a per-pod metric, e.g. requests per second.")
    object: dict[str, Any] | None = _member("type Object: {describedObject, metric, target}, e.g. an Ingress's "
                                            "requests per second.")
    external: dict[str, Any] | None = _member("type External: {metric, target}, e.g. a queue's depth.")
    container_resource: dict[str, Any] | None = _member("type ContainerResource: {name, container, target}, "
                                                        "one container's cpu or memory.")

    @model_validator(mode="after")
    def _one_member_with_a_target(self) -> "MetricSpec":
        set_members = [wire for wire in METRIC_MEMBERS.values() if self._by_wire(wire) is not None]
        if set_members != [METRIC_MEMBERS[self.type]]:
            raise FieldProblem((), ONE_MEMBER)
        member = METRIC_MEMBERS[self.type]
        if not isinstance(self._by_wire(member).get("target"), dict):
            raise FieldProblem((member, "target"), "required: what the HPA aims for (type and value)")
        return self

    def _by_wire(self, wire: str) -> dict[str, Any] | None:
        return getattr(self, "container_resource" if wire == "containerResource" else wire)

    def manifest(self) -> dict[str, Any]:
        """As an HPA's spec.metrics item."""
        member = METRIC_MEMBERS[self.type]
        return {"type": self.type, member: self._by_wire(member)}


class KedaTrigger(SpecModel):
    """One KEDA trigger, as in a ScaledObject's spec.triggers (passed through):
    e.g. {type: prometheus, metadata: {serverAddress, query, threshold}}."""

    type: str = Field(min_length=1, max_length=63, description="The KEDA scaler: prometheus, cpu, kafka, ...")
    name: str | None = Field(None, max_length=63)
    metadata: dict[str, str] = Field(description="The scaler's settings (strings, as KEDA takes them).")
    metric_type: Literal["AverageValue", "Value", "Utilization"] | None = None
    use_cached_metrics: bool | None = None
    authentication_ref: dict[str, Any] | None = Field(
        None, description="{name, kind}: a TriggerAuthentication in the model's namespace.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class KedaSpec(SpecModel):
    """engine KEDA: the ScaledObject's triggers and timings."""

    triggers: list[KedaTrigger] = Field(min_length=1, max_length=16)
    polling_interval: int | None = Field(None, ge=1, le=3600,
                                         description="Seconds between KEDA's looks at the triggers (KEDA: 30).")
    cooldown_period: int | None = Field(
        None, ge=0, le=86400,
        description="Seconds after the last active trigger before scaling to 0 (minReplicas 0; KEDA: 300).")


ENGINES = ("HPA", "KEDA")
ZERO_NEEDS_KEDA = ("autoscaling.minReplicas 0 (scale to zero) needs autoscaling.engine KEDA: an HPA cannot "
                   "scale a Deployment to 0 or up from 0")
KEDA_NEEDS_TRIGGERS = "autoscaling.engine KEDA needs autoscaling.keda.triggers"
KEDA_ONLY = "autoscaling.keda is read only with autoscaling.engine KEDA"
METRICS_ARE_HPA = ("autoscaling.metrics are the HPA's; with engine KEDA give them as autoscaling.keda.triggers "
                   "(e.g. type cpu, prometheus)")
ZERO_NEEDS_SURGE = ("autoscaling.minReplicas 0 needs rollout.capacity.mode Surge: in mode Replace the stable and "
                    "canary share the autoscaled total, and a total of 0 has nothing to share")

EngineName = Literal["HPA", "KEDA"]
