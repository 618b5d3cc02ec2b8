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

from ..api.rollout import PauseStep, RolloutSpec, Step

# The preview gate: identity, not equality, marks it (no user step is this object).
PREVIEW = Step(set_weight=0)
SWITCH = 100


def blue_green(spec) -> bool:
    """`spec`: a ModelDeploymentSpec."""
    return spec.rollout.strategy == "BlueGreen"


def effective_steps(rollout: RolloutSpec) -> tuple[Step, ...]:
    """The steps a rollout walks: spec.rollout's, or BlueGreen's."""
    if rollout.strategy != "BlueGreen":
        return tuple(rollout.steps)
    settings = rollout.blue_green_settings
    steps = [PREVIEW]
    if not settings.auto_promote:
        steps.append(Step(pause=PauseStep()))
    elif rollout.analysis is not None and rollout.analysis.metrics:
        steps.append(Step(pause=PauseStep(duration=rollout.analysis.interval)))
    steps.append(Step(set_weight=SWITCH))
    if settings.scale_down_delay_seconds > 0:
        steps.append(Step(pause=PauseStep(duration=settings.scale_down_delay)))
    return tuple(steps)


def switch_index(steps: tuple[Step, ...]) -> int:
    """Where the switch is: a promote request before it jumps there."""
    return next(i for i, step in enumerate(steps) if step.set_weight == SWITCH and step is not PREVIEW)
