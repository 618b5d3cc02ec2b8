"""Build conditions so that an unchanged situation yields an identical list.

lastTransitionTime moves only when a condition's status changes. That is what
lets the operator compare old and new status and write nothing in steady state.
"""

from datetime import datetime

from .. import conditions as c
from ..api.status import Condition, ModelDeploymentStatus
from ..api.times import format_time, parse_time  # noqa: F401  (re-exported: status code imports them from here)


def condition(
    previous: ModelDeploymentStatus,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> Condition:
    status_text = c.TRUE if status else c.FALSE
    before = previous.condition(type_)
    unchanged = before is not None and before.status == status_text
    if type_ == c.RECONCILING and before is not None and before.observed_generation != generation:
        # A new generation restarts the progress deadline, which is measured from here.
        unchanged = False
    return Condition(
        type=type_,
        status=status_text,
        reason=reason,
        message=message,
        last_transition_time=before.last_transition_time if unchanged else format_time(now),
        observed_generation=generation,
    )
