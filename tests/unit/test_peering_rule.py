"""kopf's peering rule as the controller applies it (kube/peering.py): which
live peers make a replica stand by."""
from datetime import datetime, timedelta, timezone

from modeldeploy.kube.peering import blocking_peers

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def record(priority, seconds_ago=1, lifetime=10):
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_a_live_peer_of_higher_priority_blocks():
    assert blocking_peers({"me": record(50), "boss": record(100)}, 50, NOW) == ["boss"]


def test_lower_priority_and_dead_peers_do_not_block():
    peers = {"me": record(100), "standby": record(50), "ghost": record(200, seconds_ago=11)}
    assert blocking_peers(peers, 100, NOW) == []


def test_two_of_the_same_priority_all_stand_by_as_kopf_does():
    assert sorted(blocking_peers({"a": record(7), "b": record(7)}, 7, NOW)) == ["a", "b"]
    assert blocking_peers({"a": record(7)}, 7, NOW) == []  # alone (itself, or not yet registered)


def test_a_zero_lifetime_record_is_a_peer_that_left():
    assert blocking_peers({"boss": record(100, seconds_ago=0, lifetime=0)}, 1, NOW) == []


def test_garbage_records_are_ignored():
    assert blocking_peers({"x": "junk", "y": {"priority": 9, "lastseen": "yesterday"}}, 1, NOW) == []
