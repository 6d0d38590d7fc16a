"""The learnt prompt budget: calibration from usage, and refusals that never leave it stuck."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from model.context_window import MARGIN, ContextWindow


def window(*, exact: bool = False, configured: int = 1792) -> ContextWindow:
    return ContextWindow("m", configured, reply_tokens=256, exact=exact, floor=60)


def test_an_exact_model_keeps_the_configured_budget() -> None:
    learnt = window(exact=True)
    learnt.observe(1000, 1000)
    assert learnt.budget == 1792 and learnt.exact and not learnt.learnt
    assert learnt.describe() == "exact"
    assert learnt.server_tokens(500) == 500


def test_usage_calibrates_the_budget_with_a_margin() -> None:
    learnt = window()
    assert learnt.describe().startswith("estimated (")
    learnt.observe(500, 1000)  # the server counts twice what the bot does
    assert learnt.factor == 2.0 and not learnt.exact
    assert learnt.budget == int(1792 / 2 * (1 - MARGIN))
    assert learnt.server_tokens(300) == 600
    assert "2.00 times" in learnt.describe()


def test_a_server_that_counts_less_does_not_raise_the_budget() -> None:
    learnt = window()
    learnt.observe(1000, 800)
    assert learnt.budget == 1792


def test_a_stated_window_and_count_set_the_budget_below_the_refused_prompt() -> None:
    learnt = window()
    # llama-cpp-python: "maximum context length is 2048 ... (2100 in the messages".
    budget = learnt.refused(1050, window=2048, server_count=2100)
    assert learnt.factor == 2.0
    assert budget == int((2048 - 256) / 2 * (1 - MARGIN))  # 806
    assert budget < 1050 and learnt.learnt


def test_a_silent_refusal_halves_the_budget() -> None:
    learnt = window()
    assert learnt.refused(1000) == 500


def test_a_stated_window_alone_still_shrinks_below_the_refused_prompt() -> None:
    learnt = window()
    # The window minus the reply allowance is above the bot's count: the count is off.
    assert learnt.refused(1000, window=2048) == 750


def test_the_floor_holds() -> None:
    learnt = window()
    for _ in range(20):
        learnt.refused(learnt.budget)
    assert learnt.budget == 60


def test_absurd_figures_are_ignored_and_the_refusal_counts_as_unstated() -> None:
    learnt = window()
    # A window over 10x the budget and a count 130 times the bot's: a server's slip.
    assert learnt.refused(1000, window=128000, server_count=130000) == 500
    assert learnt.factor == 1.0 and learnt.server_limit is None


def test_a_window_smaller_than_the_floor_does_not_starve_every_channel() -> None:
    learnt = window()
    # "maximum context length is 8 tokens": smaller than the system prompt itself.
    budget = learnt.refused(1000, window=8)
    assert budget >= 1000 * 0.25 and learnt.server_limit is None


def test_one_refusal_never_takes_more_than_three_quarters() -> None:
    learnt = window(configured=100_000)
    # A plausible but tiny stated window: the lesson is bounded per refusal.
    assert learnt.refused(80_000, window=2000) >= 20_000


def test_a_learnt_cap_rises_again_as_the_server_takes_near_full_prompts() -> None:
    learnt = window()
    learnt.refused(1000)
    assert learnt.budget == 500
    for _ in range(100):
        learnt.observe(learnt.budget, learnt.budget)  # accepted, at the budget
    assert learnt.budget == 1792 and not learnt.learnt


def test_usage_over_a_learnt_server_limit_raises_it() -> None:
    learnt = window(exact=True, configured=10_000)
    learnt.refused(5000, window=4256)  # room 4000 server tokens
    low = learnt.budget
    learnt.observe(4800, 6000)  # the server took 6000: its window is larger now
    assert learnt.server_limit == 6000 and learnt.budget > low


@given(
    refusals=st.lists(
        st.tuples(
            st.integers(min_value=61, max_value=5000),
            st.none() | st.integers(min_value=100, max_value=10000),
            st.none() | st.integers(min_value=100, max_value=20000),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_every_refusal_lowers_the_budget_below_what_was_refused(refusals) -> None:
    learnt = window()
    for counted, stated_window, server_count in refusals:
        budget = learnt.refused(counted, window=stated_window, server_count=server_count)
        assert budget == learnt.budget
        assert budget < counted or budget == learnt.floor
        assert learnt.floor <= budget <= learnt.configured


def test_an_answer_stopped_by_the_window_teaches_it() -> None:
    learnt = window(configured=3000)
    assert not learnt.filled(200)  # too small to be a window: the server's own limit
    assert learnt.filled(1256)  # window 1256: room for 1000 prompt tokens and a reply
    assert learnt.server_limit == 1000 and learnt.budget == 900
