"""The shared limiter's rules, on a virtual clock: when each poll on a key may go, as exact numbers.

``KeyLimiter`` reads ``time.monotonic()``/``time.time()`` and sleeps with ``asyncio.sleep``; here both run
on ``VirtualClock`` (``tests/virtual_clock.py``), so a rule is checked on the turns it gives out, not on
how fast this machine is. The HTTP side (a real 429 pausing real waits) is ``test_rate_limit.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from airflow_provider_camb.exceptions import CambRateLimitError
from airflow_provider_camb.hooks import _rate_limit
from airflow_provider_camb.hooks._rate_limit import CUT, FALLBACK_RATE, MIN_RATE, RAISE_FLOOR, RAISE_SHARE, KeyLimiter
from tests.virtual_clock import VirtualClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """The limiter's clock, and the clock of the loop ``clock.run()`` makes."""
    virtual = VirtualClock()
    monkeypatch.setattr(_rate_limit, "time", virtual)
    return virtual


def answer(limiter: KeyLimiter, count: int) -> None:
    """CAMB answered ``count`` polls on the key just now."""
    for _ in range(count):
        limiter.answered()


async def turns(limiter: KeyLimiter, clock: VirtualClock, polls: int, deadline: float | None = None) -> list[float]:
    """``polls`` polls asking for a turn at once; the (virtual) times they were let go, in order."""
    went: list[float] = []

    async def poll() -> None:
        await limiter.admit(deadline, "reading the status of a task")
        went.append(clock.now)

    await asyncio.gather(*(poll() for _ in range(polls)))
    return went


def spacing(times: list[float]) -> list[float]:
    return [round(later - earlier, 9) for earlier, later in itertools.pairwise(times)]


# --- no limit until there is a reason ----------------------------------------------------------------


def test_without_a_cap_or_a_429_no_limit_is_active(clock):
    async def scenario() -> tuple[float, float, float]:
        limiter = KeyLimiter()
        answer(limiter, 500)  # however much CAMB answers
        before = limiter.interval
        limiter.refused(None, limiter.epoch)
        return before, limiter.rate, limiter.interval

    before, rate, interval = clock.run(scenario())
    assert before == 0.0  # polls pass without asking for a turn (the hook skips admit() then)
    assert rate == pytest.approx(CUT * 500) and interval == pytest.approx(1 / (CUT * 500))


def test_a_cap_spaces_polls_evenly_from_the_start(clock):
    async def scenario() -> list[float]:
        return await turns(KeyLimiter(cap=4.0), clock, 9)

    went = clock.run(scenario())
    assert went[0] == 0.0
    assert spacing(went) == [0.25] * 8  # 4 a second, one at a time


# --- learning the limit --------------------------------------------------------------------------------


def test_the_first_429_paces_the_key_at_90_percent_of_what_camb_answered_in_the_last_second(clock):
    async def scenario() -> float:
        limiter = KeyLimiter()
        answer(limiter, 30)  # at 0 s
        await asyncio.sleep(1.5)
        answer(limiter, 20)  # at 1.5 s: only these are in the last second at 2.4 s
        await asyncio.sleep(0.9)
        limiter.refused(None, limiter.epoch)
        return limiter.rate

    assert clock.run(scenario()) == pytest.approx(CUT * 20) == pytest.approx(18.0)


def test_a_429_before_anything_was_answered_starts_from_one_request_a_second(clock):
    async def scenario() -> float:
        limiter = KeyLimiter()
        limiter.refused(None, limiter.epoch)
        return limiter.rate

    assert clock.run(scenario()) == pytest.approx(FALLBACK_RATE)


def test_the_learnt_rate_never_drops_below_its_floor(clock):
    async def scenario() -> float:
        limiter = KeyLimiter()
        for _ in range(40):  # 429 after 429, nothing answered in between
            limiter.refused(0.0, limiter.epoch)
        return limiter.rate

    assert clock.run(scenario()) == pytest.approx(MIN_RATE)


def test_a_burst_of_429s_to_polls_sent_together_cuts_the_rate_once_and_pauses_the_key(clock):
    async def scenario() -> tuple[float, float, float]:
        limiter = KeyLimiter()
        answer(limiter, 50)
        sent_in = limiter.epoch
        limiter.refused(2.0, sent_in)
        after_first = limiter.rate
        for _ in range(30):  # the other polls of the same burst: old news
            limiter.refused(2.0, sent_in)
        return after_first, limiter.rate, limiter.paused_until - clock.now

    after_first, after_burst, pause = clock.run(scenario())
    assert after_first == pytest.approx(CUT * 50)
    assert after_burst == after_first
    assert pause == 2.0


async def _saturate(limiter: KeyLimiter, clock: VirtualClock, seconds: float, pollers: int = 50) -> list[float]:
    """``pollers`` waits that poll again as soon as each answer comes (more than the rate allows, so they
    queue) until ``seconds``; the times CAMB answered them."""
    answered: list[float] = []

    async def poller() -> None:
        while clock.now < seconds:
            await limiter.admit(None, "a poll")
            limiter.answered()
            answered.append(clock.now)

    await asyncio.gather(*(poller() for _ in range(pollers)))
    return answered


def test_each_answer_to_a_queued_poll_raises_the_rate_by_2_percent_plus_half_a_request_per_rate(clock):
    """Per answer ``RAISE_SHARE + RAISE_FLOOR / rate``: at ``rate`` answers a second, 2 % plus 0.5 a second."""

    async def scenario() -> list[tuple[float, float]]:
        limiter = KeyLimiter()
        answer(limiter, 10)
        limiter.refused(0.0, limiter.epoch)
        steps: list[tuple[float, float]] = []

        async def poller() -> None:
            while len(steps) < 200:
                await limiter.admit(None, "a poll")
                before = limiter.rate
                limiter.answered()
                steps.append((before, limiter.rate - before))

        await asyncio.gather(poller(), poller(), poller())
        return steps

    steps = clock.run(scenario())
    assert steps[0][1] == 0.0  # the first poll did not have to queue: no rise
    for before, rise in steps[1:]:
        assert rise == pytest.approx(RAISE_SHARE + RAISE_FLOOR / before)


@pytest.mark.parametrize("start", [10.0, 100.0])
def test_while_polls_queue_the_rate_rises_by_2_percent_plus_half_a_request_a_second(clock, start):
    seconds = 10.0

    async def scenario() -> tuple[float, float]:
        limiter = KeyLimiter()
        answer(limiter, round(start / CUT))
        limiter.refused(0.0, limiter.epoch)  # learnt: about `start` a second
        learnt = limiter.rate
        queueing = asyncio.ensure_future(_saturate(limiter, clock, seconds, pollers=2))  # a queue, but a short one
        await asyncio.sleep(seconds)
        rise = limiter.rate - learnt  # `seconds` after the 429 (the queue drains after that)
        await queueing
        return rise, learnt

    rise, learnt = clock.run(scenario())
    # d(rate)/dt = RAISE_SHARE * rate + RAISE_FLOOR: at least 2 % and at least 0.5 requests a second, each second
    floor = RAISE_FLOOR / RAISE_SHARE
    expected = (learnt + floor) * math.exp(RAISE_SHARE * seconds) - floor - learnt
    assert rise == pytest.approx(expected, rel=0.05)
    assert rise >= max(RAISE_SHARE * learnt, RAISE_FLOOR) * seconds


def test_the_rate_does_not_rise_while_polls_need_not_queue(clock):
    async def scenario() -> tuple[float, float]:
        limiter = KeyLimiter()
        answer(limiter, 10)
        limiter.refused(0.0, limiter.epoch)  # 9 a second
        learnt = limiter.rate
        for _ in range(30):  # one poll every half second: never has to wait for a turn
            await asyncio.sleep(0.5)
            await limiter.admit(None, "a poll")
            limiter.answered()
        return learnt, limiter.rate

    learnt, later = clock.run(scenario())
    assert later == learnt


def test_the_next_429_cuts_the_risen_rate_to_90_percent_of_what_was_answered(clock):
    async def scenario() -> tuple[float, float, int]:
        limiter = KeyLimiter()
        answer(limiter, 20)
        limiter.refused(0.0, limiter.epoch)
        answered = await _saturate(limiter, clock, 5.0)
        risen = limiter.rate
        last_second = sum(1 for time in answered if time > clock.now - 1.0)
        limiter.refused(1.0, limiter.epoch)
        return risen, limiter.rate, last_second

    risen, cut, last_second = clock.run(scenario())
    assert risen > CUT * 20 + 5 * RAISE_FLOOR  # it rose while the polls queued ...
    assert cut == pytest.approx(CUT * last_second, rel=0.12)  # ... and is cut back to 90 % of what was answered
    assert cut < risen


# --- after a pause --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pause", [1.0, 7.5])
def test_after_a_pause_the_polls_resume_one_at_a_time_evenly_spaced(clock, pause):
    async def scenario() -> tuple[list[float], float]:
        limiter = KeyLimiter()
        answer(limiter, 20)
        limiter.refused(pause, limiter.epoch)  # paused for `pause` s, then 18 a second
        return await turns(limiter, clock, 12), limiter.interval

    went, interval = clock.run(scenario())
    assert went[0] == pytest.approx(pause)  # nothing before the pause ends
    assert spacing(went) == [pytest.approx(interval)] * 11  # then one at a time, evenly spaced
    assert interval == pytest.approx(1 / 18)


def test_a_429_while_polls_wait_for_their_turn_sends_them_back_into_the_queue(clock):
    async def scenario() -> list[float]:
        limiter = KeyLimiter(cap=2.0)
        waiting = asyncio.ensure_future(turns(limiter, clock, 4))  # turns at 0, 0.5, 1.0 and 1.5 s
        await asyncio.sleep(0.2)
        limiter.refused(3.0, limiter.epoch)  # at 0.2 s, nothing answered yet: paused until 3.2 s, then 1 a second
        return await waiting

    went = clock.run(scenario())
    assert went == [0.0, pytest.approx(3.2), pytest.approx(4.2), pytest.approx(5.2)]  # the turns given out are void


def test_a_poll_whose_turn_would_come_after_its_deadline_ends_there_without_being_sent(clock):
    async def scenario() -> tuple[float, str]:
        limiter = KeyLimiter()
        answer(limiter, 10)
        limiter.refused(30.0, limiter.epoch)  # paused for 30 s
        deadline = clock.time() + 5.0
        with pytest.raises(CambRateLimitError) as caught:
            await limiter.admit(deadline, "reading the status of CAMB text-to-voice task 't'")
        return clock.time() - (deadline - 5.0), str(caught.value)

    waited, message = clock.run(scenario())
    assert waited == pytest.approx(5.0)  # it waited until its deadline, not a moment longer, then gave up
    assert "held back reading the status of CAMB text-to-voice task 't' until the wait's deadline" in message
