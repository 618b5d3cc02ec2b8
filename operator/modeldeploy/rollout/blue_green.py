"""strategy BlueGreen as a step list the canary machine walks.

A blue-green rollout is a canary with fixed steps: the new revision comes up
at full size behind `<name>-preview` with no client traffic (PREVIEW: passed
once every pod is ready, which starts the analysis clock), waits for
approval (autoPromote false) or, with analysis, for one interval of it; then
takes all the traffic at once (setWeight 100: a route's weights 0/100, or
the client Service's selector with the replicas provider), and the old
revision keeps its pods for scaleDownDelay, so an abort or a failed analysis
switches back with no cold start. Then the usual promotion: stable takes the
new revision, the traffic returns to it, the canary goes.

Walking the canary's steps keeps one machine (and its safety property test)
for both strategies; these steps are built from the spec, never stored.
"""

from ..api.rollout import PauseStep, Step
from ..api.spec import ModelDeploymentSpec

# The preview gate: identity, not equality, marks it (no user step is this object).
PREVIEW = Step(set_weight=0)
SWITCH = 100


def blue_green(spec: ModelDeploymentSpec) -> bool:
    return spec.rollout.strategy == "BlueGreen"


def effective_steps(spec: ModelDeploymentSpec) -> tuple[Step, ...]:
    """The steps a rollout of `spec` walks: the spec's, or BlueGreen's."""
    if not blue_green(spec):
        return tuple(spec.rollout.steps)
    settings = spec.rollout.blue_green_settings
    steps = [PREVIEW]
    if not settings.auto_promote:
        steps.append(Step(pause=PauseStep()))
    elif spec.rollout.analysis is not None and spec.rollout.analysis.metrics:
        steps.append(Step(pause=PauseStep(duration=spec.rollout.analysis.interval)))
    steps.append(Step(set_weight=SWITCH))
    if settings.scale_down_delay_seconds > 0:
        steps.append(Step(pause=PauseStep(duration=settings.scale_down_delay)))
    return tuple(steps)


def switch_index(steps: tuple[Step, ...]) -> int:
    """Where the switch is: a promote request before it jumps there."""
    return next(i for i, step in enumerate(steps) if step.set_weight == SWITCH and step is not PREVIEW)
