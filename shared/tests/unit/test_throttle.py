from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clinishare_shared.throttle import throttle_decision

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def fails(*seconds_ago: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds_ago]


def decide(failures: list[datetime], now: datetime = NOW, limit: int = 10, window: timedelta = WINDOW):
    return throttle_decision(failures, now=now, limit=limit, window=window)


def test_up_to_ten_failures_each_get_an_answer():
    for n in range(10):
        assert decide(fails(*range(10, 10 + 60 * n, 60))).allowed, n


def test_the_attempt_after_ten_failures_is_throttled_until_the_oldest_ages_out():
    ten = fails(*[800 - 10 * i for i in range(10)])  # oldest 800 s ago
    decision = decide(ten)
    assert not decision.allowed
    assert decision.retry_after == 100  # 900 - 800


def test_window_passing_resets():
    ten = fails(*[800 - 10 * i for i in range(10)])
    assert decide(ten, now=NOW + timedelta(seconds=100)).allowed
    assert not decide(ten, now=NOW + timedelta(seconds=99)).allowed


def test_failures_outside_the_window_do_not_count():
    assert decide(fails(*[900 + i for i in range(50)])).allowed


def test_a_parallel_attempt_stamped_a_little_later_still_counts():
    assert not decide(fails(*range(9)) + [NOW + timedelta(milliseconds=3)]).allowed


def test_retry_after_never_exceeds_the_window_even_for_attempts_stamped_a_little_later():
    assert decide([NOW + timedelta(milliseconds=3)] * 10).retry_after == 900


def test_retry_after_is_when_enough_failures_age_out_not_just_the_oldest():
    twelve = fails(*[850, 840, 830] + [100] * 9)  # 12 in the window: 3 must age out
    assert decide(twelve).retry_after == 900 - 830


def test_limit_and_window_are_parameters():
    assert not decide(fails(10, 20), limit=2, window=timedelta(minutes=1)).allowed
    assert decide(fails(10, 70), limit=2, window=timedelta(minutes=1)).allowed


@given(st.lists(st.floats(min_value=0, max_value=2000), max_size=30))
def test_decision_matches_counting_failures_in_the_window(seconds_ago):
    failures = fails(*seconds_ago)
    decision = decide(failures)
    in_window = [s for s in seconds_ago if s < WINDOW.total_seconds()]
    assert decision.allowed == (len(in_window) < 10)
    if not decision.allowed:
        assert 1 <= decision.retry_after <= 900
        assert decide(failures, now=NOW + timedelta(seconds=decision.retry_after)).allowed
