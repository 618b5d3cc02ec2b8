"""The ModelDeployment API: pydantic models, the single source of truth for the
CRD schema, spec validation and the status the operator writes."""

from .durations import format_duration, parse_duration
from .meta import API_VERSION, GROUP, KIND, MAX_NAME_LENGTH, PLURAL, SHORT_NAMES, VERSION
from .parsing import InvalidSpec, check_name, parse_spec
from .rollout import AnalysisSpec, MetricCheck, PauseStep, RolloutSpec, Step
from .spec import (
    Autoscaling,
    EnvVar,
    ModelCredentials,
    ModelDeploymentSpec,
    ModelSource,
    PodMetadata,
    Resources,
    RuntimeSpec,
)
from .status import (
    Condition,
    DecisionRecord,
    PausedBy,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RoleStatus,
    RolloutProgress,
    Stage,
    StableStatus,
    TrafficStatus,
)
from .traffic import GatewayAPITraffic, IstioTraffic, ParentRef, TrafficSpec

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "MAX_NAME_LENGTH",
    "PLURAL",
    "SHORT_NAMES",
    "VERSION",
    "AnalysisSpec",
    "Autoscaling",
    "Condition",
    "DecisionRecord",
    "PausedBy",
    "EnvVar",
    "GatewayAPITraffic",
    "HistoryEntry",
    "InvalidSpec",
    "IstioTraffic",
    "MetricCheck",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelCredentials",
    "ModelSource",
    "ParentRef",
    "PauseStep",
    "Phase",
    "PodMetadata",
    "Resources",
    "RoleStatus",
    "RolloutProgress",
    "RolloutSpec",
    "Stage",
    "RuntimeSpec",
    "StableStatus",
    "Step",
    "TrafficSpec",
    "TrafficStatus",
    "check_name",
    "format_duration",
    "parse_duration",
    "parse_spec",
]
