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


def test_an_absurd_count_is_bounded() -> None:
    learnt = window()
    learnt.refused(1000, window=128000, server_count=130000)
    assert learnt.factor == 8.0
    learnt.observe(1000, 1000)  # the next real usage puts it right again
    assert learnt.budget == 1792


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
