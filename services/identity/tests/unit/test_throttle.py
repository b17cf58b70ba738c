from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clinishare_identity.domain.throttle import Lookup, pin_lookup_decision

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def fails(*seconds_ago: float) -> list[Lookup]:
    return [Lookup(at=NOW - timedelta(seconds=s), ok=False) for s in seconds_ago]


def oks(*seconds_ago: float) -> list[Lookup]:
    return [Lookup(at=NOW - timedelta(seconds=s), ok=True) for s in seconds_ago]


def test_up_to_ten_failures_each_get_an_answer():
    for n in range(10):
        assert pin_lookup_decision(fails(*range(10, 10 + 60 * n, 60)), now=NOW).allowed, n


def test_the_lookup_after_ten_failures_is_throttled_until_the_oldest_ages_out():
    ten = fails(*[800 - 10 * i for i in range(10)])  # oldest 800 s ago
    decision = pin_lookup_decision(ten, now=NOW)
    assert not decision.allowed
    assert decision.retry_after == 100  # 900 - 800


def test_window_passing_resets():
    ten = fails(*[800 - 10 * i for i in range(10)])
    assert pin_lookup_decision(ten, now=NOW + timedelta(seconds=100)).allowed
    assert not pin_lookup_decision(ten, now=NOW + timedelta(seconds=99)).allowed


def test_successes_do_not_count_and_do_not_reset():
    assert pin_lookup_decision(fails(*range(9)) + oks(*range(100)), now=NOW).allowed
    assert not pin_lookup_decision(fails(*range(10)) + oks(0), now=NOW).allowed


def test_failures_outside_the_window_do_not_count():
    assert pin_lookup_decision(fails(*[900 + i for i in range(50)]), now=NOW).allowed


def test_retry_after_is_when_enough_failures_age_out_not_just_the_oldest():
    twelve = fails(*[850, 840, 830] + [100] * 9)  # 12 in the window: 3 must age out
    assert pin_lookup_decision(twelve, now=NOW).retry_after == 900 - 830


def test_limit_and_window_are_parameters():
    assert not pin_lookup_decision(fails(10, 20), now=NOW, limit=2, window=timedelta(minutes=1)).allowed
    assert pin_lookup_decision(fails(10, 70), now=NOW, limit=2, window=timedelta(minutes=1)).allowed


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=2000), st.booleans()), max_size=30))
def test_decision_matches_counting_failures_in_the_window(history):
    lookups = [Lookup(at=NOW - timedelta(seconds=s), ok=ok) for s, ok in history]
    decision = pin_lookup_decision(lookups, now=NOW)
    in_window = [s for s, ok in history if not ok and s < WINDOW.total_seconds()]
    assert decision.allowed == (len(in_window) < 10)
    if not decision.allowed:
        assert 1 <= decision.retry_after <= 900
        later = NOW + timedelta(seconds=decision.retry_after)
        assert pin_lookup_decision(lookups, now=later).allowed
