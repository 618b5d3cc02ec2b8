"""`spec.rollout`: how a new revision replaces the serving one."""

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import SpecModel
from .durations import bounded_duration, parse_duration
from .formats import DNS1123Label
from .problems import FieldProblem

PauseDuration = bounded_duration(1, 24 * 3600)
AnalysisInterval = bounded_duration(1, 3600)

MAX_STEPS = 20
MAX_METRICS = 10
MAX_QUERY_LENGTH = 4096

# What a query may name as {{placeholder}} (spaces inside the braces allowed);
# rollout.analysis binds exactly these.
PLACEHOLDERS = ("canary.revision", "stable.revision", "namespace", "name")
KNOWN_PLACEHOLDERS = ", ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS)
# A query whose every "{{" opens a known placeholder. Written without escapes,
# so it reads the same in Python, in the CRD's CEL rule and in YAML; CEL's
# matches() is an unanchored search like re.search.
_NAMES = "|".join(name.replace(".", "[.]") for name in PLACEHOLDERS)
PLACEHOLDER_REGEX = f"^([^{{]|[{{][^{{]|[{{]$|[{{][{{] *({_NAMES}) *[}}][}}])*$"
_KNOWN = re.compile(f"[{{][{{] *({_NAMES}) *[}}][}}]")


def _placeholder_rule(field: str) -> dict[str, str]:
    return {
        "rule": f"!has(self.{field}) || self.{field}.matches('{PLACEHOLDER_REGEX}')",
        "message": f"{field} may use only the placeholders {KNOWN_PLACEHOLDERS}",
    }


def repeated(names) -> list[str]:
    """The names that occur more than once, sorted (a list's names must be unique)."""
    seen = list(names)
    return sorted({name for name in seen if seen.count(name) > 1})


def check_placeholders(query: str | None) -> str | None:
    """Refuse a {{placeholder}} that analysis would leave in the PromQL as written
    (a misspelling would otherwise fail every query, forever). Accepts exactly
    what PLACEHOLDER_REGEX accepts, and names the first offender."""
    if query is None or re.search(PLACEHOLDER_REGEX, query):
        return query
    at = 0
    while (at := query.find("{{", at)) >= 0 and (known := _KNOWN.match(query, at)):
        at = known.end()
    end = query.find("}}", at)
    unknown = query[at : end + 2] if 0 <= end < at + 64 else query[at : at + 64]
    raise FieldProblem((), f"unknown placeholder {unknown}; the known placeholders are {KNOWN_PLACEHOLDERS}")


class PauseStep(SpecModel):
    """Hold the current weight. Without a duration, wait for `approvedVersion`."""

    duration: PauseDuration | None = Field(
        None, description="How long to hold, e.g. 60s. Omit to wait for approval (rollout.approvedVersion)."
    )

    @property
    def seconds(self) -> int | None:
        """The duration in seconds; None for a pause that waits for approval."""
        return None if self.duration is None else parse_duration(self.duration)


class MirrorStep(SpecModel):
    """Copy a share of the client requests to the canary, whose answers are
    discarded: the canary sees real traffic before any user depends on it."""

    percent: int = Field(
        ge=0, le=100,
        description="Percent of requests copied to the canary (0 stops mirroring). In effect until a later "
        "setMirror changes it or the rollout ends.",
    )


ONE_ACTION = "each rollout step sets exactly one of setWeight, setMirror or pause"


class Step(SpecModel):
    """One rollout step: shift traffic (setWeight), mirror it (setMirror) or
    wait (pause); exactly one."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + "
                            "(has(self.setMirror) ? 1 : 0) == 1",
                    "message": ONE_ACTION,
                }
            ]
        }
    }

    set_weight: int | None = Field(
        None, ge=0, le=100, description="Percent of traffic sent to the canary (0-100)."
    )
    set_mirror: MirrorStep | None = Field(
        None, description="Mirror a share of the requests to the canary (shadow traffic; gatewayAPI and istio only)."
    )
    pause: PauseStep | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> "Step":
        if sum(action is not None for action in (self.set_weight, self.set_mirror, self.pause)) != 1:
            raise FieldProblem((), ONE_ACTION)
        return self


DEFAULT_STEPS = (
    Step(set_weight=20),
    Step(pause=PauseStep(duration="60s")),
    Step(set_weight=50),
    Step(pause=PauseStep(duration="60s")),
)


class PrometheusSpec(SpecModel):
    address: str = Field(
        max_length=512,
        pattern=r"^https?://.+",
        description="Base URL of the Prometheus API, e.g. http://prometheus.monitoring:9090.",
    )


class MetricCheck(SpecModel):
    """A PromQL query whose value must stay within [min, max]."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "a metric needs min, max, or both"},
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "message": "a metric's min must be <= its max",
                },
                _placeholder_rule("query"),
            ]
        }
    }

    name: DNS1123Label
    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_LENGTH,
        description="PromQL returning one number. May use {{canary.revision}}, {{stable.revision}}, "
        "{{namespace}} and {{name}}.",
    )
    min: float | None = Field(None, allow_inf_nan=False, description="Fail when the value is below this.")
    max: float | None = Field(None, allow_inf_nan=False, description="Fail when the value is above this.")
    compare_to_stable: bool = Field(
        False,
        description="Compare the canary's value to the stable's (bounds apply to canary minus stable).",
    )

    _placeholders = field_validator("query")(check_placeholders)

    @model_validator(mode="after")
    def _bounds(self) -> "MetricCheck":
        if self.min is None and self.max is None:
            raise FieldProblem((), "a metric needs min, max, or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldProblem("min", f"must be <= max (got {self.min} > {self.max})")
        return self


class AnalysisSpec(SpecModel):
    """Metric checks run every `interval` while the canary takes traffic."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.metrics) || size(self.metrics) == 0 || has(self.prometheus)",
                    "message": "analysis.metrics need analysis.prometheus.address",
                },
                {
                    "rule": "!has(self.minSamples) || self.minSamples == 0 || has(self.samplesQuery)",
                    "message": "analysis.minSamples needs analysis.samplesQuery to count the samples",
                },
                _placeholder_rule("samplesQuery"),
            ]
        }
    }

    interval: AnalysisInterval = "30s"

    @property
    def interval_seconds(self) -> int:
        return parse_duration(self.interval)
    failure_limit: int = Field(2, ge=0, le=100, description="Failed checks tolerated before rolling back.")
    min_samples: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Checks with fewer samples (samplesQuery) are Inconclusive, never a vacuous Pass.",
    )
    samples_query: str | None = Field(
        None, max_length=MAX_QUERY_LENGTH, description="PromQL counting the requests in the window (minSamples)."
    )
    on_inconclusive: Literal["Pause", "Rollback", "Continue"] = "Pause"
    consecutive_error_limit: int = Field(
        4,
        ge=0,
        le=100,
        description="Analysis rounds in a row with a failed query (Prometheus unreachable, several series) "
        "tolerated; one more rolls back. A round without errors resets the count.",
    )
    prometheus: PrometheusSpec | None = None
    metrics: list[MetricCheck] = Field(default_factory=list, max_length=MAX_METRICS)

    _placeholders = field_validator("samples_query")(check_placeholders)

    @model_validator(mode="after")
    def _consistent(self) -> "AnalysisSpec":
        if self.metrics and self.prometheus is None:
            raise FieldProblem("prometheus", "required when metrics are set (where should queries go?)")
        if self.min_samples and not self.samples_query:
            raise FieldProblem("samplesQuery", "required when minSamples > 0 (it counts the samples)")
        duplicates = repeated(metric.name for metric in self.metrics)
        if duplicates:
            raise FieldProblem("metrics", f"metric names must be unique (repeated: {', '.join(duplicates)})")
        return self


# A pod count or a percentage of spec.replicas, as a Deployment's maxSurge.
PodsOrPercent = int | str
PODS_OR_PERCENT = r"^(100|[1-9]?[0-9])%$"
ZERO = "['0', '0%']"


def pods_of(value: PodsOrPercent, replicas: int, *, round_up: bool) -> int:
    """A maxSurge/maxUnavailable in pods: a percentage rounds up for the
    surge and down for the unavailable pods, as a Deployment's do."""
    if isinstance(value, int):
        return value
    share = replicas * int(value.rstrip("%"))
    return -(-share // 100) if round_up else share // 100


def _pods_or_percent(description: str, default: str):
    return Field(None, description=f"{description} Pods (e.g. 1) or a percentage of spec.replicas (e.g. 25%); "
                                   f"default {default}. Only with mode: Replace.")


def _pods_or_percent_rule(field: str) -> dict[str, str]:
    # An int-or-string's members carry no bounds or pattern of their own in a
    # structural schema: CEL checks whichever of the two it is.
    return {
        "rule": f"!has(self.{field}) || (type(self.{field}) == int ? self.{field} >= 0 && self.{field} <= 10000 "
                f": string(self.{field}).matches('{PODS_OR_PERCENT}'))",
        "message": f"{field} must be a pod count from 0 to 10000 or a percentage from 0% to 100% such as 25%",
    }


class CapacitySpec(SpecModel):
    """How a canary gets its pods, and what happens when the cluster has no
    room for them."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode == 'Replace' || (!has(self.maxSurge) && !has(self.maxUnavailable))",
                    "message": "maxSurge and maxUnavailable apply to mode: Replace (in mode Surge the canary's pods "
                               "come on top of stable's full count)",
                },
                {
                    "rule": f"!has(self.maxSurge) || !has(self.maxUnavailable) || !(string(self.maxSurge) in {ZERO} "
                            f"&& string(self.maxUnavailable) in {ZERO})",
                    "message": "maxSurge and maxUnavailable cannot both be 0: no pod could ever be replaced",
                },
                _pods_or_percent_rule("maxSurge"),
                _pods_or_percent_rule("maxUnavailable"),
            ]
        }
    }

    mode: Literal["Surge", "Replace"] = Field(
        "Surge",
        description="Surge: the canary's pods come on top of stable's full count. Replace: stable shrinks as the "
        "canary grows, never more than replicas + maxSurge pods in all and never fewer than replicas - "
        "maxUnavailable ready (a GPU model rolls out with no spare GPU: maxSurge 0).",
    )
    max_surge: PodsOrPercent | None = _pods_or_percent("Pods above spec.replicas a Replace rollout may run.", "25%")
    max_unavailable: PodsOrPercent | None = _pods_or_percent(
        "Ready pods below spec.replicas a Replace rollout may go.", "1")

    on_unschedulable: Literal["Wait", "Rollback"] = Field(
        "Wait",
        description="A canary pod the scheduler cannot place: Wait for room (at most progressDeadlineSeconds, "
        "then roll back) or Rollback at once. Stable is never touched either way.",
    )

    @field_validator("max_surge", "max_unavailable", mode="before")
    @classmethod
    def _pods_or_percent(cls, value: PodsOrPercent | None) -> PodsOrPercent | None:
        if isinstance(value, bool) or (isinstance(value, int) and not 0 <= value <= 10000):
            raise FieldProblem((), f"must be a pod count from 0 to 10000 or a percentage such as 25% (got {value!r})")
        if isinstance(value, str) and not re.match(PODS_OR_PERCENT, value):
            raise FieldProblem((), f"must be a pod count or a percentage from 0% to 100% such as 25% (got {value!r})")
        return value

    @model_validator(mode="after")
    def _replace_only(self) -> "CapacitySpec":
        if self.mode != "Replace" and (self.max_surge is not None or self.max_unavailable is not None):
            raise FieldProblem("maxSurge" if self.max_surge is not None else "maxUnavailable",
                               "applies to mode: Replace (in mode Surge the canary's pods come on top of stable's "
                               "full count)")
        if self.mode == "Replace" and str(self.max_surge) in ("0", "0%") and str(self.max_unavailable) in ("0", "0%"):
            raise FieldProblem((), "maxSurge and maxUnavailable cannot both be 0: no pod could ever be replaced")
        return self

    def budget(self, replicas: int) -> tuple[int, int]:
        """(surge, unavailable) in pods for `replicas` (mode Replace). Both
        coming to 0 (percentages of few replicas) makes one pod unavailable,
        as a Deployment's rolling update does."""
        surge = pods_of(self.max_surge if self.max_surge is not None else "25%", replicas, round_up=True)
        unavailable = pods_of(self.max_unavailable if self.max_unavailable is not None else 1, replicas,
                              round_up=False)
        return surge, max(unavailable, 1 if surge == 0 else 0)


# -- smoke-test checks (issue 12 item 4) ---------------------------------------

MAX_CHECKS = 10
MAX_CHECK_NAME = 20
CheckTimeout = bounded_duration(1, 6 * 3600)
# Where a check gates the rollout: before any client traffic, before step N
# (1-based, as `modeldeploy status` counts steps) acts, or before promotion.
CHECK_AT_PATTERN = r"^(PreRollout|PrePromotion|Step [1-9][0-9]?)$"
PRE_ROLLOUT, PRE_PROMOTION = "PreRollout", "PrePromotion"


class CheckJob(SpecModel):
    template: dict[str, Any] = Field(
        description="A JobSpec (batch/v1): at least template.spec.containers. The operator adds the env vars "
        "MODELDEPLOY_CANARY_URL, MODELDEPLOY_CANARY_REVISION, MODELDEPLOY_CANARY_VERSION and "
        "MODELDEPLOY_MODEL_NAME to every container, backoffLimit 0 and activeDeadlineSeconds from the check's "
        "timeout unless given, restartPolicy Never and a restricted securityContext when none is given.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @field_validator("template")
    @classmethod
    def _job_spec_shaped(cls, template: dict[str, Any]) -> dict[str, Any]:
        pod = template.get("template")
        spec = pod.get("spec") if isinstance(pod, dict) else None
        containers = spec.get("containers") if isinstance(spec, dict) else None
        if not isinstance(containers, list) or not containers or not all(
                isinstance(c, dict) and c.get("name") and c.get("image") for c in containers):
            raise FieldProblem(("template", "spec", "containers"),
                               "a check's job.template is a JobSpec: it needs template.spec.containers, each with "
                               "a name and an image")
        for key in ("selector", "manualSelector", "suspend", "ttlSecondsAfterFinished"):
            if key in template:
                raise FieldProblem(key, "is the operator's to set on a check Job (it creates, "
                                   "watches and cleans up the Job itself)")
        return template


class RolloutCheck(SpecModel):
    """A smoke test: a Job the operator runs against the canary's Service at
    one point of the rollout. It passes when the Job succeeds; it fails when
    the Job fails or does not finish within `timeout`, which rolls back."""

    name: Annotated[DNS1123Label, Field(max_length=MAX_CHECK_NAME)] = Field(
        description="Unique among the checks; part of its Jobs' names.")
    at: str = Field(
        pattern=CHECK_AT_PATTERN,
        description="PreRollout: once the canary's pods are ready, before any client traffic (weight, mirror, "
        "header route) reaches it. Step N: before step N (1-based) acts. PrePromotion: after every step, before "
        "promotion.",
    )
    job: CheckJob
    timeout: CheckTimeout = Field("5m", description="Fail the check when its Job has not finished by then.")

    @property
    def timeout_seconds(self) -> int:
        return parse_duration(self.timeout)

    def gate(self, steps: int) -> int:
        """The index of the step this check must pass before (len(steps): promotion)."""
        if self.at == PRE_ROLLOUT:
            return 0
        if self.at == PRE_PROMOTION:
            return steps
        return int(self.at.split()[1]) - 1


ScaleDownDelay = bounded_duration(0, 24 * 3600)


class BlueGreenSpec(SpecModel):
    """strategy BlueGreen: the new revision comes up at full size behind
    `<name>-preview`, then takes all the traffic at once."""

    auto_promote: bool = Field(
        False,
        description="false: wait for approval (rollout.approvedVersion or the promote annotation) before the "
        "switch, as an open pause does. true: switch once the preview is ready and, with analysis, judged once.",
    )
    scale_down_delay: ScaleDownDelay = Field(
        "30s",
        description="How long the old revision keeps its pods after the switch: an abort or a failed analysis "
        "meanwhile switches back at once, with no cold start.",
    )

    @property
    def scale_down_delay_seconds(self) -> int:
        return parse_duration(self.scale_down_delay)


# The steps' schema default, as CEL spells it: with BlueGreen the steps must
# be left out (the API server fills in this default).
# (CEL cannot compare them with a list literal: its maps are of one type.)
_DEFAULT_STEPS_CEL = " && ".join([f"size(self.steps) == {len(DEFAULT_STEPS)}", *(
    f"has(self.steps[{i}].setWeight) && self.steps[{i}].setWeight == {step.set_weight}" if step.set_weight is not None
    else f"has(self.steps[{i}].pause) && has(self.steps[{i}].pause.duration) && "
         f"self.steps[{i}].pause.duration == '{step.pause.duration}'"
    for i, step in enumerate(DEFAULT_STEPS))])
NO_BLUE_GREEN_STEP_CHECKS = ("rollout.checks at Step N need strategy Canary: BlueGreen has no steps of yours; "
                             "use PreRollout (the preview, before any traffic) or PrePromotion (before the switch)")
NO_BLUE_GREEN_STEPS = ("rollout.steps apply to strategy Canary; BlueGreen switches all traffic at once "
                       "(rollout.blueGreen): leave the steps out")


class RolloutSpec(SpecModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.blueGreen) || (has(self.strategy) && self.strategy == 'BlueGreen')",
                    "message": "rollout.blueGreen is set, but strategy is not BlueGreen: remove it or set "
                               "strategy: BlueGreen",
                },
                {
                    "rule": "!has(self.strategy) || self.strategy != 'BlueGreen' || !has(self.capacity) || "
                            "!has(self.capacity.mode) || self.capacity.mode == 'Surge'",
                    "message": "strategy BlueGreen runs both revisions at full size: it needs capacity mode Surge",
                },
                {
                    "rule": f"!has(self.strategy) || self.strategy != 'BlueGreen' || !has(self.steps) || "
                            f"({_DEFAULT_STEPS_CEL})",
                    "message": NO_BLUE_GREEN_STEPS,
                },
                {
                    "rule": "!has(self.checks) || self.checks.all(c, self.checks.exists_one(d, d.name == c.name))",
                    "message": "rollout.checks names must be unique",
                },
                {
                    "rule": "!has(self.strategy) || self.strategy != 'BlueGreen' || !has(self.checks) || "
                            "self.checks.all(c, !c.at.startsWith('Step '))",
                    "message": NO_BLUE_GREEN_STEP_CHECKS,
                },
            ]
        }
    }

    strategy: Literal["Canary", "BlueGreen", "Recreate"] = Field(
        "Canary", description="Canary shifts traffic step by step; BlueGreen brings the new revision up at full "
        "size behind <name>-preview and switches all traffic at once; Recreate replaces the serving pods at once."
    )
    blue_green: BlueGreenSpec | None = Field(None, description="Settings of strategy BlueGreen.")
    steps: list[Step] = Field(
        default_factory=lambda: list(DEFAULT_STEPS),
        max_length=MAX_STEPS,
        description="Canary steps. An empty list promotes as soon as the canary is ready.",
        json_schema_extra={
            "default": [step.model_dump(mode="json", by_alias=True, exclude_none=True) for step in DEFAULT_STEPS]
        },
    )
    approved_version: str | None = Field(
        None, max_length=128, description="Set to the canary's model.version to release a pause without duration."
    )
    progress_deadline_seconds: int = Field(
        600,
        ge=10,
        le=86400,
        description="How long pods may take to become ready before the deployment is Stalled.",
    )
    analysis: AnalysisSpec | None = None
    capacity: CapacitySpec = Field(default_factory=CapacitySpec)
    checks: list[RolloutCheck] = Field(
        default_factory=list,
        max_length=MAX_CHECKS,
        description="Smoke-test Jobs run against the canary at PreRollout, Step N or PrePromotion; one at a time, "
        "in this order at each point.",
    )

    @model_validator(mode="after")
    def _checks_fit_the_steps(self) -> "RolloutSpec":
        duplicates = repeated(check.name for check in self.checks)
        if duplicates:
            raise FieldProblem("checks", f"rollout.checks names must be unique (repeated: {', '.join(duplicates)})")
        for index, check in enumerate(self.checks):
            if check.at.startswith("Step ") and self.strategy == "BlueGreen":
                raise FieldProblem(("checks", index, "at"), NO_BLUE_GREEN_STEP_CHECKS.removeprefix("rollout.checks "))
            if check.at.startswith("Step ") and not 1 <= int(check.at.split()[1]) <= len(self.steps):
                raise FieldProblem(("checks", index, "at"),
                                   f"{check.at} names no step: rollout.steps has {len(self.steps)} (Step N is 1-based)")
        return self

    @model_validator(mode="after")
    def _blue_green(self) -> "RolloutSpec":
        if self.blue_green is not None and self.strategy != "BlueGreen":
            raise FieldProblem("blueGreen", "set, but strategy is not BlueGreen: remove it or set strategy: BlueGreen")
        if self.strategy == "BlueGreen":
            if self.capacity.mode != "Surge":
                raise FieldProblem(("capacity", "mode"), "strategy BlueGreen runs both revisions at full size: it "
                                   "needs capacity mode Surge")
            if tuple(self.steps) != DEFAULT_STEPS:
                raise FieldProblem("steps", NO_BLUE_GREEN_STEPS.removeprefix("rollout.steps "))
        return self

    @property
    def blue_green_settings(self) -> BlueGreenSpec:
        return self.blue_green if self.blue_green is not None else BlueGreenSpec()
