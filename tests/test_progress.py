"""The progress bar's time-left estimate (``gipp_codec.commands.progress``)."""

import pytest

from gipp_codec.commands.progress import StepClock, format_time_left


def test_time_left_counts_from_the_first_report_not_from_the_start():
    """Set-up before the first report (a first run compiles kernels for half a minute) does
    not enter the rate: 100 steps in 2 s, 899 to go: 17.98 s."""
    clock = StepClock(1000)
    assert clock.observe(1, now=30.0) == 1 and clock.seconds_left() is None  # no steps timed yet
    clock.observe(51, now=31.0)
    assert clock.seconds_left() == pytest.approx(949 * 1.0 / 50)
    assert clock.observe(101, now=32.0) == 50
    assert clock.seconds_left() == pytest.approx(899 * 2.0 / 100)
    assert clock.passes == 1


def test_no_estimate_before_half_a_second_of_steps():
    clock = StepClock(1000)
    clock.observe(1, now=0.0)
    clock.observe(400, now=0.4)
    assert clock.seconds_left() is None
    clock.observe(500, now=0.5)
    assert clock.seconds_left() == pytest.approx(500 * 0.5 / 499)


def test_a_lower_iteration_starts_a_new_pass_and_restarts_the_clock():
    """The encoder's second pass to hit a rate reports from iteration 1 again: the bar goes
    back by the steps it had made, and the rate is measured afresh."""
    clock = StepClock(1000)
    clock.observe(1, now=0.0)
    clock.observe(1000, now=10.0)
    assert clock.observe(1, now=50.0) == -999 and clock.passes == 2
    clock.observe(101, now=54.0)
    assert clock.seconds_left() == pytest.approx(899 * 4.0 / 100)


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (59.6, "1:00"), (61, "1:01"), (3600 + 125, "1:02:05"),
                                           (-3, "0:00")])
def test_time_left_reads_as_minutes_and_seconds(seconds, text):
    assert format_time_left(seconds) == text
