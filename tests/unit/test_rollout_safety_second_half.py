"""The second half of the stateful rollout-safety test's examples in `make
test` (test_rollout_safety.py says what it checks): the same machine with
its own random examples and settings, in a module of its own so that
pytest-xdist (--dist loadfile) runs the two halves on two workers at once."""
from hypothesis import settings

from test_rollout_safety import RolloutSafety


class RolloutSafetySecondHalf(RolloutSafety):
    pass


RolloutSafetySecondHalf.TestCase.settings = settings.get_profile("rollout-safety")
TestRolloutSafetySecondHalf = RolloutSafetySecondHalf.TestCase
