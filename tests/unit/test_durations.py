import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.api import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1h0m5s", 3605), ("90s", 90)])
def test_parses_go_style_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "1d", "5m1h", "-5s", "1.5h", " 5s", "s"])
def test_rejects_anything_else(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10 * 24 * 3600))
def test_formatting_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99))
def test_units_add_up(hours, minutes, seconds):
    text = f"{hours}h{minutes}m{seconds}s"
    assert parse_duration(text) == hours * 3600 + minutes * 60 + seconds
