"""What `modeldeploy status` and `modeldeploy history` print (pure).

A ModelDeployment as read from the cluster (a plain dict) and the time now go
in; text comes out. No cluster access and no clock of its own, so the view is
golden-tested from recorded objects. Colour is an option of the caller, on
only for a terminal: piped output is plain text without escape codes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .. import conditions as c
from ..api import ModelDeploymentStatus, PausedBy, RolloutSpec, Stage
from ..rollout.blue_green import PREVIEW, SWITCH, effective_steps
from ..status.transitions import format_time, parse_time

BAR_CELLS = 20
DECISIONS_SHOWN = 8

_GREEN, _YELLOW, _RED, _BOLD, _DIM, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
_BLUE = "\x1b[34m"
_PHASE_COLOUR = {"Ready": _GREEN, "Failed": _RED, "RolledBack": _RED, "Degraded": _RED, "Shadow": _BLUE,
                 "Preview": _BLUE}
_VERDICT_COLOUR = {"Pass": _GREEN, "Fail": _RED, "Inconclusive": _YELLOW}


@dataclass(frozen=True)
class Style:
    colour: bool = False

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour and code else text

    def phase(self, phase: str) -> str:
        return self.paint(phase, _PHASE_COLOUR.get(phase, _YELLOW))

    def verdict(self, verdict: str) -> str:
        return self.paint(verdict, _VERDICT_COLOUR.get(verdict, ""))

    def heading(self, text: str) -> str:
        return self.paint(text, _BOLD)


PLAIN = Style()


# -- small formatting helpers ----------------------------------------------------


def traffic_bar(stable: int, canary: int) -> str:
    """`stable ██████████████░░░░░░ 70% | canary 30%`: one cell per 5%."""
    filled = round(stable * BAR_CELLS / 100)
    return f"stable {'█' * filled}{'░' * (BAR_CELLS - filled)} {stable}% | canary {canary}%"


def age(since: str | None, now: datetime) -> str:
    """Elapsed time like kubectl prints it (42s, 3m10s, 5h2m, 3d4h)."""
    if not since:
        return "-"
    try:
        seconds = int((now - parse_time(since)).total_seconds())
    except ValueError:
        return since
    return _span(max(seconds, 0))


def _span(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"{minutes}m{secs}s" if secs and minutes < 10 else f"{minutes}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60}m" if rest >= 60 and hours < 10 else f"{hours}h"
    days, rest = divmod(seconds, 86400)
    return f"{days}d{rest // 3600}h" if rest >= 3600 and days < 10 else f"{days}d"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ",
           paint: Mapping[int, Callable[[str], str]] | None = None) -> list[str]:
    """Columns padded to their widest cell; the last column is never padded
    (it holds free text such as messages). `paint` colours cells of a column
    after padding, as escape codes take no width on screen."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for number, row in enumerate((header, *rows)):
        cells = []
        for column, cell in enumerate(row):
            text = str(cell).ljust(widths[column]) if column < len(widths) else str(cell)
            if number and paint and column in paint:
                padding = len(text) - len(str(cell))
                text = paint[column](str(cell)) + " " * padding
            cells.append(text)
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


# -- the status view ---------------------------------------------------------------


def _status_of(md: Mapping[str, Any]) -> ModelDeploymentStatus | None:
    raw = md.get("status")
    if not raw:
        return None
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:
        return None


def _steps(md: Mapping[str, Any]) -> RolloutSpec | None:
    """The spec's rollout (defaults applied), or None when it cannot be read."""
    spec = md.get("spec") or {}
    try:
        return RolloutSpec.model_validate(spec.get("rollout") or {})
    except ValidationError:
        return None


def _role(label: str, role, style: Style) -> str:
    if role is None:
        return f"  {label:<9} -"
    return (f"  {label:<9} {role.model_version or '?'}  revision {role.revision or '?'}  "
            f"ready {role.ready_replicas}/{role.replicas}")


def _traffic(status: ModelDeploymentStatus) -> str:
    traffic = status.traffic
    if traffic is None:
        return "  traffic   -"
    line = f"  traffic   {traffic_bar(traffic.stable, traffic.canary)}"
    rollout = status.rollout
    if rollout is not None and rollout.stage in (Stage.CANARY, Stage.PROMOTING) and rollout.weight != traffic.canary:
        line += f"  (moving to canary {rollout.weight}%)"
    elif not traffic.verified and status.canary is not None:
        line += "  (not yet read back from the route)"
    extras = []
    if traffic.mirror:
        extras.append(f"a copy of {traffic.mirror}% of the requests goes to the canary (shadow, answers discarded)")
    if traffic.headers_to_canary is not None:
        extras.append("requests with the canary headers go to the "
                      + ("canary" if traffic.headers_to_canary else "stable (no canary pod ready)"))
    return "\n".join([line, *(f"            {extra}" for extra in extras)])


def describe_step(md: Mapping[str, Any], status: ModelDeploymentStatus, now: datetime) -> list[str]:
    """Where the rollout is and what it waits for: pause end, approval, ready
    pods, analysis. Empty when nothing is in flight or rolled back."""
    rollout = status.rollout
    if rollout is None or rollout.stage in (None, Stage.STABLE):
        return []
    tried = f"{rollout.model_version} (revision {rollout.revision})"
    if rollout.stage == Stage.ROLLED_BACK:
        return [f"  rollout   rolled back {tried}: {rollout.message or 'no reason recorded'}",
                "            stable keeps serving; change the spec to try a new version"]
    if rollout.stage == Stage.PROMOTING:
        stable = status.stable
        ready = f" ({stable.ready_replicas}/{stable.replicas} ready)" if stable else ""
        return [f"  rollout   promoting {tried}: waiting for the stable Deployment to run it on every "
                f"replica{ready}, then traffic returns to stable and the canary goes"]

    total = rollout.total_steps
    plan = _steps(md)
    steps = effective_steps(plan) if plan is not None else ()
    lines = []
    if rollout.step >= total:
        lines.append(f"  step      {total}/{total}  done: promotes once the canary pods are ready")
    else:
        step = steps[rollout.step] if rollout.step < len(steps) else None
        name = (md.get("metadata") or {}).get("name", "<name>")
        waits = (f"waits for check {rollout.check.name} ({rollout.check.at or '?'}) before it acts"
                 if rollout.check is not None else _waiting_for(step, status, now, name))
        lines.append(f"  step      {rollout.step + 1}/{total}  {waits}")
    if rollout.paused_reason and (rollout.paused_by == PausedBy.ANALYSIS or rollout.paused_reason not in lines[0]):
        lines.append(f"  paused    {rollout.paused_reason}")
    if rollout.not_ready_since:
        deadline = plan.progress_deadline_seconds if plan else None
        limit = f"; rolls back after {deadline}s" if deadline else ""
        lines.append(f"  pods      canary not ready for {age(rollout.not_ready_since, now)}{limit}")
    lines.extend(_checks(rollout, now))
    analysis = _analysis(plan, status, now)
    if analysis:
        lines.append(analysis)
    return lines


def _checks(rollout, now: datetime) -> list[str]:
    """The smoke-test check running (spec.rollout.checks) and those passed."""
    lines = []
    check = rollout.check
    if check is not None:
        ran = f" for {age(check.started_at, now)}" if check.started_at else ""
        limit = f" of {_span(check.timeout_seconds)}" if check.timeout_seconds else ""
        lines.append(f"  check     {check.name} ({check.at or '?'}) running{ran}{limit} as Job {check.job}; "
                     f"kubectl logs job/{check.job}")
    if rollout.passed_checks:
        lines.append(f"  checks    passed: {', '.join(rollout.passed_checks)}")
    return lines


def _waiting_for(step, status: ModelDeploymentStatus, now: datetime, name: str) -> str:
    rollout = status.rollout
    if step is None:
        return "(cannot read spec.rollout.steps; kubectl get md -o yaml shows them)"
    if step is PREVIEW:
        canary = status.canary
        ready = f" ({canary.ready_replicas}/{canary.replicas} ready)" if canary else ""
        return f"preview: the new revision comes up at full size behind {name}-preview{ready}, no client traffic"
    if step.set_mirror is not None:
        return (f"setMirror {step.set_mirror.percent}%: waiting for the canary pods to take the copies and the "
                f"route to hold them")
    if step.set_weight == SWITCH and rollout.strategy == "BlueGreen":
        return "switch: all traffic to the new revision at once, once every pod of it is ready"
    if step.set_weight is not None:
        canary = status.canary
        ready = f" ({canary.ready_replicas}/{canary.replicas} ready)" if canary else ""
        return (f"setWeight {step.set_weight}%: waiting for the canary pods to be ready{ready} and the route "
                f"to hold {step.set_weight}%")
    if step.pause.duration is None:
        return f"pause: {rollout.paused_reason or 'waiting for approval'}"
    seconds = step.pause.seconds
    if not rollout.step_started_at:
        return f"pause {step.pause.duration}"
    end = parse_time(rollout.step_started_at) + timedelta(seconds=seconds)
    left = int((end - now).total_seconds())
    if left <= 0:
        return f"pause {step.pause.duration}: over, the next step starts now"
    return f"pause {step.pause.duration}: ends in {_span(left)} (at {format_time(end)})"


def _analysis(plan: RolloutSpec | None, status: ModelDeploymentStatus, now: datetime) -> str | None:
    rollout = status.rollout
    if plan is None or plan.analysis is None or not plan.analysis.metrics:
        return None
    spec = plan.analysis
    checks = f"failed checks {rollout.failed_checks} of {spec.failure_limit} tolerated"
    if rollout.consecutive_errors:
        checks += f"; query errors {rollout.consecutive_errors} in a row of {spec.consecutive_error_limit} tolerated"
    if not rollout.last_analysis_at:
        return f"  analysis  every {spec.interval}, from when the canary takes traffic; {checks}"
    due = parse_time(rollout.last_analysis_at) + timedelta(seconds=spec.interval_seconds)
    left = int((due - now).total_seconds())
    when = f"next in {_span(left)}" if left > 0 else "due now"
    return f"  analysis  every {spec.interval}, {when}; {checks}"


def _conditions(status: ModelDeploymentStatus, now: datetime) -> list[str]:
    if not status.conditions:
        return []
    rows = [(c.type, c.status, c.reason, age(c.last_transition_time, now), c.message or "")
            for c in status.conditions]
    return ["", "Conditions", *_table(("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"), rows)]


def decisions_table(status: ModelDeploymentStatus, style: Style = PLAIN, shown: int = DECISIONS_SHOWN) -> list[str]:
    decisions = status.rollout.decisions if status.rollout else []
    if not decisions:
        return []
    last = decisions[-shown:]
    title = "Decisions" if len(last) == len(decisions) else f"Decisions (last {len(last)} of {len(decisions)})"
    # A smoke-test check's record: its Job where a metric has its bound, its outcome as the verdict.
    rows = [(d.time, d.metric, _number(d.value), (f"job {d.job}" if d.job else d.bound) or "-",
             "-" if d.samples is None else str(d.samples), d.outcome or d.verdict, d.action) for d in last]
    header = ("TIME", "METRIC", "VALUE", "BOUND", "SAMPLES", "VERDICT", "ACTION")
    return ["", title, *_table(header, rows, paint={5: style.verdict} if style.colour else None)]


def render_status(md: Mapping[str, Any], now: datetime, style: Style = PLAIN) -> str:
    meta = md.get("metadata") or {}
    name, namespace = meta.get("name", "?"), meta.get("namespace", "?")
    status = _status_of(md)
    if status is None:
        return (f"{style.heading(name)} in {namespace}: no status yet\n"
                "  the operator has not reported on it: is it running? (modeldeploy run)\n")
    phase = status.phase.value if status.phase else "Unknown"
    lines = [f"{style.heading(name)} in {namespace}: {style.phase(phase)}"]
    generation = meta.get("generation")
    if generation is not None and status.observed_generation is not None and status.observed_generation < generation:
        lines.append(f"  (the operator has not yet reported on generation {generation}; "
                     f"this is generation {status.observed_generation})")
    lines.append(_role("stable", status.stable, style))
    if status.canary is not None:
        lines.append(_role("canary", status.canary, style))
    lines.append(_traffic(status))
    if status.capacity is not None:
        cap = status.capacity
        lines.append(f"  pods      stable {cap.stable}, canary {cap.canary} of a budget of {cap.budget} "
                     f"(capacity mode Replace; at least {cap.min_ready} ready)")
    lines.extend(describe_step(md, status, now))
    if status.url:
        lines.append(f"  url       {status.url}")
    ready = status.condition(c.READY)
    if status.message and (ready is None or ready.message != status.message):
        lines.append(f"  message   {status.message}")  # else the Ready condition below says it
    lines.extend(_conditions(status, now))
    lines.extend(decisions_table(status, style))
    return "\n".join(lines) + "\n"


# -- the history table ---------------------------------------------------------------


def render_history(md: Mapping[str, Any]) -> str:
    status = _status_of(md)
    name = (md.get("metadata") or {}).get("name", "?")
    if status is None or not status.history:
        return f"{name}: no revisions recorded yet\n"
    rows = [(h.time, h.model_version, h.revision, h.uri, h.result) for h in status.history]
    return "\n".join(_table(("TIME", "VERSION", "REVISION", "URI", "RESULT"), rows, indent="")) + "\n"
