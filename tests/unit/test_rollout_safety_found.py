"""Sequences the rollout-safety property test (test_rollout_safety.py) found,
replayed step by step as plain regression tests: each keeps failing the way
hypothesis saw it until the defect is fixed, whatever seed a later run draws."""
import pytest

from test_rollout_safety import RolloutSafety
from test_rollout_safety_second_half import RolloutSafetySecondHalf


def test_found_an_abort_under_capacity_replace_after_a_crash_looping_supersede_keeps_a_ready_pod():
    """Found by CI on 2026-12-07 (seed 33832658213758568865842215705858132113):
    under capacity Replace, a new revision while a rolled-back canary's pods
    crash-loop and stable's never get ready; the walk-back took the canary's
    looping pod away while it was the only ready one (invariant 5)."""
    state = RolloutSafety()
    state.create_models(neighbour='fraud-canary', neighbour_first=False)
    state.status_write_fails(code=409)
    state.edit_version(version='v2')
    state.reconcile_before_controllers_react()
    state.canary_runs_a_check_that_ends(checks='pre-rollout', outcome='DeadlineExceeded', promote=True,
                                        provider='gatewayAPI', then_wait=False)
    state.abort_with_a_lost_status_write(code=409, then_wait=True, value='true')
    state.set_capacity(capacity='Replace')
    state.canary_runs_a_check_that_ends(checks='pre-rollout', outcome='BackoffLimitExceeded', promote=True,
                                        provider='gatewayAPI', then_wait=False)
    state.controllers_progress()
    state.pods_behave(behaviour='never-ready', version='v2')
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    state.pods_behave(behaviour='crash-loop', version='v3')
    state.operator_down_while_time_passes(seconds=30)
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value='true')
    state.teardown()


def test_found_a_pre_rollout_check_added_while_a_replace_promotion_has_moved_nothing_runs_before_any_traffic():
    """Found by the property test on 2026-12-07 (a local run): in capacity
    mode Replace with surge, the promote annotation started a promotion of a
    canary with no traffic yet; a PreRollout check added to the spec then
    was never run, and the promotion gave the canary 74% of the client
    traffic (invariant 12)."""
    state = RolloutSafety()
    state.create_models(neighbour='fraud-canary', neighbour_first=False)
    state.annotate_abort(value='true')
    state.api_server_refuses_this_version()
    state.api_server_refuses_this_version()
    state.set_capacity(capacity='Replace-surge')
    state.canary_runs_a_check_that_ends(checks='step-1', outcome='Complete', promote=False, provider='gatewayAPI',
                                        then_wait=False)
    state.edit_version(version='v3')
    state.restart_with_stale_cache(passes_ago=1)
    state.annotate_promote(value='true')
    state.api_server_refuses_this_version()
    state.operator_down_while_time_passes(seconds=5)
    state.canary_runs_a_check_that_ends(checks='pre-rollout', outcome='Complete', promote=False,
                                        provider='gatewayAPI', then_wait=False)
    state.api_server_refuses_this_version()
    state.teardown()


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "found by CI on 2026-12-08 (the second half's property test), also on the code from before that session; "
    "not fixed yet: capacity Replace after KEDA-to-zero and autoscaling edits, a restart from a cache three "
    "passes old leaves 3 pods where the budget is 1 (invariant 10)"))
def test_found_a_stale_restart_under_capacity_replace_after_autoscaling_edits_keeps_the_pod_budget():
    state = RolloutSafetySecondHalf()
    state.create_models(neighbour='fraud-canary', neighbour_first=False)
    state.controllers_progress()
    state.edit_keda_to_zero(extra=1)
    state.status_write_fails(code=409)
    state.prometheus_stays_unreachable_for(answer='several-series', rounds=1, then_wait=False)
    state.edit_autoscaling(extra=0, keda=False, min_replicas=3)
    state.status_write_fails(code=409)
    state.edit_keda_to_zero(extra=3)
    state.canary_runs_a_check_that_ends(checks='pre-rollout', outcome='DeadlineExceeded', promote=False,
                                        provider='gatewayAPI', then_wait=False)
    state.set_capacity(capacity='Replace')
    state.restart_with_stale_cache(passes_ago=3)
    state.teardown()
