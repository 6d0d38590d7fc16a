"""Tests for splitting: an example per rule, then properties over generated answers."""

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import CLUSTER, cluster_edges, final_messages
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply
from text.splitting import DISCORD_MESSAGE_LIMIT, ReplySplitter, split_for_discord

# Written independently of the module: up to 3 spaces, then three backticks or tildes.
FENCE_LINE = re.compile(r" {0,3}(```|~~~)")
# CommonMark's fence line: the run of backticks or tildes, and what follows it on the line.
FENCE_RUN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
REOPENED = re.compile(r"(`{3,}|~{3,})[^\n]*\n")
CLOSED = re.compile(r"\n(`{3,}|~{3,})\Z")

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man, woman, girl, boy
TONED_FAMILY = "\U0001f469\U0001f3fd\u200d\U0001f468\U0001f3ff\u200d\U0001f466\U0001f3fb"
FLAGS = "\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea\U0001f1ef\U0001f1f5"  # France, Germany, Japan
THUMBS_UP = "\U0001f44d\U0001f3fd"  # with a medium skin tone
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"
ACCENTED = "e\u0301\u0308"  # e, acute, diaeresis


def balanced(message: str) -> bool:
    """Whether message ends outside any code block, under CommonMark: a run of 3+ backticks
    (with no backtick after it) or tildes opens a block; a run of the same character, at
    least as long, with only spaces and tabs after it, closes it."""
    opened = None
    for line in message.split("\n"):
        fence = FENCE_RUN.fullmatch(line.removesuffix("\r"))
        if fence is None:
            continue
        run, rest = fence.groups()
        if opened is None:
            if not (run.startswith("`") and "`" in rest):
                opened = run
        elif run[0] == opened[0] and len(run) >= len(opened) and not rest.strip(" \t"):
            opened = None
    return opened is None


def visible_text(text: str) -> str:
    """The non-whitespace characters of text, in order, outside fence lines."""
    lines = [line for line in text.split("\n") if not FENCE_LINE.match(line)]
    return "".join("".join(line.split()) for line in lines)


def clusters(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each grapheme cluster of text."""
    return [match.span() for match in CLUSTER.finditer(text)]


def message_bodies(message: str) -> list[str]:
    """What of message may be answer text: all of it, or less a reopen line the splitter may
    have put before it or a closing fence it may have put after it."""
    bodies = [message]
    if opened := REOPENED.match(message):
        bodies.append(message[opened.end() :])
    bodies += [body[: closed.start()] for body in bodies if (closed := CLOSED.search(body))]
    return [body for body in bodies if body]


def locate(text: str, messages: list[str]) -> list[tuple[int, int]] | None:
    """The (start, end) in text of each message's answer text, found in order with only
    whitespace around them; None if there is no such reading of the messages."""
    # A depth-first search over which fences were added; a dead end is left at once.
    stack: list[tuple[int, int, tuple]] = [(0, 0, ())]
    seen = set()
    while stack:
        index, at, found = stack.pop()
        if index == len(messages):
            if not text[at:].strip():
                spans = []
                while found:
                    span, found = found
                    spans.append(span)
                return spans[::-1]
            continue
        if (index, at) in seen:
            continue
        seen.add((index, at))
        blank_end = len(text) - len(text[at:].lstrip())
        for body in message_bodies(messages[index]):
            for start in range(at, blank_end + 1):
                if text.startswith(body, start):
                    stack.append(
                        (index + 1, start + len(body), ((start, start + len(body)), found))
                    )
    return None


def stream(text: str, deltas: list[str], limit: int) -> list[str]:
    """Feed deltas (which must join to text) and collect every message; check the previews."""
    assert "".join(deltas) == text
    splitter = ReplySplitter(limit)
    messages = []
    for delta in deltas:
        messages += splitter.feed(delta)
        preview = splitter.preview()
        assert len(preview) <= limit - 2
        assert balanced(preview)
    return messages + splitter.finish()


# --- Examples -------------------------------------------------------------------------------


def test_short_text_is_one_message_unchanged() -> None:
    assert split_for_discord("Hello, **world**!\n\nSecond paragraph.") == [
        "Hello, **world**!\n\nSecond paragraph."
    ]


def test_whitespace_only_gives_no_messages() -> None:
    assert split_for_discord("") == []
    assert split_for_discord(" \n\t\n  ") == []


def test_surrounding_whitespace_is_stripped() -> None:
    assert split_for_discord("\n\n\nhello\n\n") == ["hello"]


def test_exactly_the_limit_is_one_message_one_more_is_two() -> None:
    text = "x" * 1000 + " " + "y" * 999
    assert len(text) == DISCORD_MESSAGE_LIMIT
    assert split_for_discord(text) == [text]
    assert split_for_discord(text + "y") == ["x" * 1000, "y" * 1000]


def test_last_paragraph_break_is_preferred_over_line_break() -> None:
    text = "a" * 10 + "\n\n" + "b" * 20 + "\n\n" + "c" * 20 + "\n" + "d" * 20 + " " + "e" * 30
    assert split_for_discord(text, limit=100) == [
        "a" * 10 + "\n\n" + "b" * 20,
        "c" * 20 + "\n" + "d" * 20 + " " + "e" * 30,
    ]


def test_line_break_is_preferred_over_word_break() -> None:
    text = "b" * 60 + "\n" + "c" * 20 + " " + "d" * 30
    assert split_for_discord(text, limit=100) == ["b" * 60, "c" * 20 + " " + "d" * 30]


def test_word_break_drops_the_separating_space() -> None:
    text = "c" * 60 + " " + "d" * 30 + " " + "e" * 30
    assert split_for_discord(text, limit=100) == ["c" * 60 + " " + "d" * 30, "e" * 30]


def test_cut_drops_blank_lines_but_keeps_indentation() -> None:
    text = "a" * 40 + "\n\n\n    indented"
    assert split_for_discord(text, limit=50) == ["a" * 40, "    indented"]


def test_word_longer_than_the_limit_is_hard_cut() -> None:
    # 4 characters of every window stay reserved for a closing fence.
    assert split_for_discord("a" * 5000) == ["a" * 1996, "a" * 1996, "a" * 1008]


def test_long_code_block_is_closed_and_reopened_with_its_tag() -> None:
    code = [f"    value_{i} = compute({i})" for i in range(200)]
    messages = split_for_discord("```python\n" + "\n".join(code) + "\n```")
    assert len(messages) >= 3
    for message in messages:
        assert len(message) <= DISCORD_MESSAGE_LIMIT
        assert message.startswith("```python\n")
        assert message.endswith("\n```")
    inside = [line for m in messages for line in m.split("\n") if not FENCE_LINE.match(line)]
    assert inside == code  # in order, indentation intact


def test_block_left_open_is_closed_at_the_end() -> None:
    assert split_for_discord("Try:\n```py\nprint(1)\n") == ["Try:\n```py\nprint(1)\n```"]


def test_a_longer_fence_is_not_closed_by_a_shorter_one() -> None:
    # The tester's case: a file shown in a four-backtick fence that holds a ``` line.
    text = "File: `b.py`\n````python\nprint(1)\n```\nbreak fence\n````"
    assert split_for_discord(text) == [text]
    assert stream(text, list(text), DISCORD_MESSAGE_LIMIT) == [text]


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        ("```\ncode\n```python\nmore", "```\ncode\n```python\nmore\n```"),  # info: content
        ("```\ncode\n  `````  \nafter", "```\ncode\n  `````  \nafter"),  # longer closes
        ("~~~\ncode\n```\nmore", "~~~\ncode\n```\nmore\n~~~"),  # other character: content
        ("```x```\ntext", "```x```\ntext"),  # a backtick after the run: inline code
        ("~~~ `x`\ncode", "~~~ `x`\ncode\n~~~"),  # a tilde fence's info may hold backticks
        ("a\n    ```\ncode", "a\n    ```\ncode"),  # four spaces: indented code, not a fence
    ],
)
def test_fences_open_and_close_as_commonmark_says(text: str, closed: str) -> None:
    assert split_for_discord(text) == [closed]


@pytest.mark.parametrize(("fence", "tag"), [("````", "python"), ("~~~", "rust"), ("~~~~~", "")])
def test_a_cut_block_is_reopened_with_its_own_fence_and_tag(fence: str, tag: str) -> None:
    code = [f"line {i}" if i % 3 else "```" for i in range(60)]
    text = f"Intro\n{fence}{tag}\n" + "\n".join(code) + f"\n{fence}\nafter"
    messages = split_for_discord(text, limit=100)
    assert len(messages) >= 5
    assert messages[0].startswith(f"Intro\n{fence}{tag}\n")
    assert all(m.startswith(f"{fence}{tag}\n") for m in messages[1:-1])
    assert all(m.endswith(f"\n{fence}") and len(m) <= 100 for m in messages[:-1])
    assert messages[-1].endswith(f"\n{fence}\nafter")
    inside = [line for m in messages for line in m.split("\n")]
    inside = [line for line in inside if line not in (fence, fence + tag, "Intro", "after")]
    assert inside == code  # the ``` lines stay code, in order
    assert stream(text, list(text), 100) == messages


def test_a_tag_is_dropped_when_the_fence_leaves_no_room_for_it() -> None:
    # The reopen line and closing fence take at most 40 characters: 2 * 9 + 2 + 20 is 40.
    code = "\n".join(["x = 1"] * 30)
    for tag, reopened in [("t" * 20, "`" * 9 + "t" * 20 + "\n"), ("t" * 21, "`" * 9 + "\n")]:
        messages = split_for_discord(f"{'`' * 9}{tag}\n{code}\n{'`' * 9}", limit=100)
        assert len(messages) > 1
        assert all(m.startswith(reopened) for m in messages[1:])


def test_a_fence_too_long_to_reopen_is_kept_but_not_reopened() -> None:
    fence = "`" * 20  # 2 * 20 + 2 characters: more than the 40 a reopen may take
    text = f"{fence}\n" + "\n".join(["```", "x = 1"] * 30) + f"\n{fence}\ntail"
    messages = split_for_discord(text, limit=100)
    assert len(messages) > 2
    assert all(len(m) <= 100 for m in messages)
    assert not any(m.startswith(fence) for m in messages[1:])
    assert messages[-1].endswith(f"\n{fence}\ntail")  # the ``` lines did not close it
    splitter = ReplySplitter(100)  # not stream(): its previews are unbalanced too
    assert [m for char in text for m in splitter.feed(char)] + splitter.finish() == messages


def test_a_message_opening_a_long_fence_leaves_room_to_close_it() -> None:
    # The room reserved is a ``` fence's; the cut moves back for the longer one.
    fence = "`" * 19
    text = f"aaaaa\n{fence}\n" + "\n".join(["code"] * 40)
    assert split_for_discord(text, limit=50)[0] == f"aaaaa\n{fence}\ncode\n{fence}"
    for size in range(50, 70):
        messages = split_for_discord(text, limit=size)
        assert messages[0].startswith(f"aaaaa\n{fence}\ncode\n")
        assert all(len(m) <= size and balanced(m) for m in messages)
        assert stream(text, list(text), size) == messages


def test_language_tag_is_reopened_up_to_32_characters() -> None:
    code = "\n".join(["x = 1"] * 20)
    for tag, reopened in [("t" * 32, "```" + "t" * 32 + "\n"), ("t" * 33, "```\n")]:
        messages = split_for_discord(f"```{tag}\n{code}\n```", limit=100)
        assert len(messages) > 1
        assert all(m.startswith(reopened) for m in messages[1:])


def test_pathological_language_tag_neither_loops_nor_overflows() -> None:
    text = "```" + "a" * 3000 + "\nprint('hi')\n```\n\nafter"
    messages = split_for_discord(text)
    assert 1 < len(messages) < 5
    assert all(len(m) <= DISCORD_MESSAGE_LIMIT and balanced(m) for m in messages)
    assert messages[-1].endswith("after")
    assert stream(text, list(text), DISCORD_MESSAGE_LIMIT) == messages


def test_indentation_wider_than_a_message_is_dropped() -> None:
    # Found at the head of the rest after a cut, where it would make whitespace-only messages.
    assert split_for_discord("intro\n" + " " * 3000 + "code", limit=100) == ["intro", "code"]


def test_limit_too_small_for_a_reopened_block_is_refused() -> None:
    with pytest.raises(ValueError):
        ReplySplitter(40)


def test_streaming_finalises_messages_before_the_end() -> None:
    splitter = ReplySplitter(100)
    early = splitter.feed("word " * 100)
    assert early
    assert all(len(m) <= 100 for m in early)
    assert early + splitter.finish() == split_for_discord("word " * 100, 100)


def test_preview_closes_an_open_block_and_reopens_after_a_cut() -> None:
    splitter = ReplySplitter(60)
    assert splitter.preview() == ""
    splitter.feed(" \n")
    assert splitter.preview() == ""
    assert splitter.feed("```py\nprint(1)\n") == []
    assert splitter.preview() == "```py\nprint(1)\n```"
    assert splitter.feed("print(2)\n" * 6) == ["```py\nprint(1)\n" + "print(2)\n" * 4 + "```"]
    assert splitter.preview() == "```py\nprint(2)\nprint(2)\n```"
    assert splitter.finish() == ["```py\nprint(2)\nprint(2)\n```"]


def test_streaming_one_character_at_a_time_matches() -> None:
    text = "Intro.\n\n```js\n" + "let x = 1;  // comment\n" * 30 + "```\n\n" + "tail " * 40
    assert stream(text, list(text), 120) == split_for_discord(text, 120)


def test_hard_cut_keeps_an_emoji_family_whole() -> None:
    text = "x" * 1994 + FAMILY  # 2001 code points: the window ends inside the family
    assert split_for_discord(text) == ["x" * 1994, FAMILY]
    assert stream(text, list(text), DISCORD_MESSAGE_LIMIT) == ["x" * 1994, FAMILY]


@pytest.mark.parametrize(
    "unit",
    [FAMILY, TONED_FAMILY, FLAGS, THUMBS_UP, RAINBOW_FLAG, ACCENTED, FAMILY + FLAGS + ACCENTED],
)
def test_long_run_of_clusters_is_split_between_them(unit: str) -> None:
    # The "x" puts the window's end at an odd offset in the run of units.
    text = "x" + unit * (2 * DISCORD_MESSAGE_LIMIT // len(unit) + 1)
    whole = set(CLUSTER.findall(text))
    messages = split_for_discord(text)
    assert len(messages) >= 3
    assert "".join(messages) == text
    for message in messages:
        assert len(message) <= DISCORD_MESSAGE_LIMIT
        assert set(CLUSTER.findall(message)) <= whole  # e.g. no flag made of two halves
    for size in (1, 3):
        deltas = [text[i : i + size] for i in range(0, len(text), size)]
        assert stream(text, deltas, DISCORD_MESSAGE_LIMIT) == messages


def test_run_of_clusters_between_words_is_cut_at_a_space() -> None:
    text = " ".join(["family", FAMILY * 3, "flags", FLAGS, "thumbs", THUMBS_UP * 4] * 40)
    messages = split_for_discord(text)
    assert len(messages) >= 2
    assert " ".join(messages) == text  # every cut at a space, and only the space dropped


def test_cluster_longer_than_a_message_is_cut_between_code_points() -> None:
    # Pathological: one letter with 4,999 combining marks. Nothing else can fit it.
    text = "a" + "\u0301" * 4999
    messages = split_for_discord(text)
    assert messages == [text[:1996], text[1996:3992], text[3992:]]
    assert stream(text, [text[i : i + 3] for i in range(0, len(text), 3)], 2000) == messages


def test_space_carrying_a_mark_is_text_not_whitespace() -> None:
    # A combining mark joins the space before it; the pair is one visible character.
    assert split_for_discord("\n \u0301x") == [" \u0301x"]
    assert stream("\n \u0301x", ["\n ", "\u0301", "x"], 100) == [" \u0301x"]
    assert split_for_discord("a" * 60 + " \u0301" + "b" * 60, limit=100) == [
        "a" * 60 + " \u0301" + "b" * 34,
        "b" * 26,
    ]
    assert split_for_discord("intro\n" + " " * 3000 + "\u0301code", limit=100) == [
        "intro",
        " \u0301code",
    ]
    # A prepended mark (ARABIC NUMBER SIGN) joins the space after it.
    assert split_for_discord("x\u0600 \n") == ["x\u0600 "]


def test_preview_truncates_between_clusters() -> None:
    splitter = ReplySplitter(100)
    assert splitter.feed(FAMILY * 14) == []  # 98 code points: over the preview's 94
    assert splitter.preview() == FAMILY * 13
    splitter.feed("\U0001f468\u200d")  # a family whose next member has not arrived yet
    assert splitter.feed("\U0001f469") == [FAMILY * 13]
    assert splitter.finish() == [FAMILY + "\U0001f468\u200d\U0001f469"]


async def test_a_streamed_answer_with_a_longer_fence_is_reopened_with_it(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # As the bot shows files: a four-backtick fence around text holding ``` lines.
    await start_bot(STREAM_REPLIES="true")
    code = "\n".join("```" if i % 5 == 0 else f"step {i}:" + " more" * 12 for i in range(120))
    text = f"File: `notes.md`\n````markdown\n{code}\n````\n\nThat is the file."
    openai_api.script(Reply(text, chunks=[text[i : i + 90] for i in range(0, len(text), 90)]))
    await discord_api.user_says("general", "alice", "show it")
    posted = await final_messages(discord_api, "general", len(split_for_discord(text)))
    assert len(posted) >= 3
    assert posted == split_for_discord(text)
    assert all(m.startswith("````markdown\n") for m in posted[1:])
    assert all(m.endswith("\n````") for m in posted[:-1])
    assert posted[-1].endswith("\n````\n\nThat is the file.")
    lines = [line for m in posted for line in m.split("\n")]
    assert [line for line in lines if line.startswith("step") or line == "```"] == code.split("\n")
    assert all(p.status == 200 for p in discord_api.posts("general"))


# --- Properties -----------------------------------------------------------------------------

WORD_CHARS = "abcxyzABC0129.,;:!?()*_-#'\"" + "éßñø" + "日本語中文" + "😀🎉👍🏽" + "\u0301\u0308"
words = st.text(st.sampled_from(WORD_CHARS), min_size=1, max_size=12)
long_words = st.builds(
    lambda char, n: char * n, st.sampled_from(["a", "語", "😀", "e\u0301"]), st.integers(40, 2100)
)
spaces = st.text(st.sampled_from("  \t\u3000\xa0"), min_size=1, max_size=30)
newlines = st.sampled_from(["\n", "\n\n", "\n\n\n", " \n", "\n  ", "\n    ", "\n \n"])
# Fence lines of both characters and several lengths; some cannot close a block (an info
# string after them) and some cannot open one (a backtick after them: inline code).
fences = st.builds(
    lambda indent, char, length, tag: f"\n{' ' * indent}{char * length}{tag}\n",
    st.integers(0, 3),
    st.sampled_from("`~"),
    st.integers(3, 7),
    st.sampled_from(["", "", "python", "js", "c++", "x" * 10, " \t", " `x`", "`"]),
)
# Many short lines or words at once, so texts get long enough to need cuts at limit 2000.
filler = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["lorem ipsum ", "    code(line)\n", "para one.\n\n", "日本語 "]),
    st.integers(1, 200),
)
SKIN_TONES = [chr(code) for code in range(0x1F3FB, 0x1F400)]
REGIONAL_INDICATORS = [chr(code) for code in range(0x1F1E6, 0x1F200)]
MARKS = ["\u0301", "\u0308", "\u0327", "\u0323", "\u030a", "\u20dd"]
people = st.builds(
    str.__add__,
    st.sampled_from(["\U0001f468", "\U0001f469", "\U0001f467", "\U0001f466"]),
    st.sampled_from(["", *SKIN_TONES]),
)
graphemes = st.one_of(
    st.lists(people, min_size=2, max_size=4).map("\u200d".join),  # ZWJ families
    st.lists(st.sampled_from(REGIONAL_INDICATORS), min_size=2, max_size=2).map("".join),
    st.builds(
        str.__add__,
        st.sampled_from(["\U0001f44d", "\U0001f44b", "\u270b"]),
        st.sampled_from(SKIN_TONES),
    ),
    st.builds(
        lambda base, marks: base + "".join(marks),
        st.sampled_from("aeoAEOnc"),
        st.lists(st.sampled_from(MARKS), min_size=1, max_size=4),
    ),
    st.sampled_from(
        [
            RAINBOW_FLAG,
            "\u2764\ufe0f\u200d\U0001f525",  # heart on fire
            "\U0001f1eb",  # a lone regional indicator: shifts the pairing of those after it
            "\u200d",  # a lone joiner
            " \u0301",  # a space carrying a mark
            "\u0600 ",  # a prepended mark joined to a space
            "\r\n",
            "\u0915\u094d\u0937",  # a Devanagari conjunct
            "\u1100\u1161\u11a8",  # a Hangul syllable in jamo
        ]
    ),
)
emoji_words = st.lists(st.one_of(graphemes, words), min_size=1, max_size=6).map("".join)
grapheme_runs = st.builds(
    lambda units, n: "".join(units) * n,
    st.lists(graphemes, min_size=1, max_size=3),
    st.integers(1, 150),
)
answers = st.lists(
    st.one_of(
        words, words, spaces, newlines, fences, long_words, filler, emoji_words, grapheme_runs
    ),
    max_size=40,
).map("".join)
limits = st.one_of(st.integers(50, 300), st.just(DISCORD_MESSAGE_LIMIT))


@settings(max_examples=200, deadline=None)
@given(answers, limits)
def test_messages_fit_are_balanced_and_keep_the_text(text: str, limit: int) -> None:
    messages = split_for_discord(text, limit)
    assert (messages == []) == (text.strip() == "")
    for message in messages:
        assert 1 <= len(message) <= limit
        assert message.strip()
        assert balanced(message)
    assert visible_text("\n".join(messages)) == visible_text(text)


@settings(max_examples=150, deadline=None)
@given(answers, limits, st.data())
def test_streaming_gives_the_same_messages(text: str, limit: int, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=60)))
    deltas = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    assert stream(text, deltas, limit) == split_for_discord(text, limit)


@settings(max_examples=50, deadline=None)
@given(answers, st.integers(50, 300), st.integers(1, 7))
def test_streaming_in_tiny_deltas_gives_the_same_messages(text: str, limit: int, size: int) -> None:
    deltas = [text[i : i + size] for i in range(0, len(text), size)]
    assert stream(text, deltas, limit) == split_for_discord(text, limit)


@settings(max_examples=200, deadline=None)
@given(answers, limits)
def test_no_message_starts_or_ends_inside_a_cluster(text: str, limit: int) -> None:
    messages = split_for_discord(text, limit)
    spans = locate(text, messages)
    # Each message is a piece of the answer (less the fences the splitter adds), in order,
    # and only whitespace is left out: the text joined again is the answer less that.
    assert spans is not None
    edges = cluster_edges(text)
    # A cluster longer than the smallest budget (limit less a reopen line and a closing fence)
    # is the one thing that may be cut inside.
    too_long = [(start, end) for start, end in clusters(text) if end - start > limit - 40]
    for span in spans:
        for edge in span:
            assert edge in edges or any(start < edge < end for start, end in too_long)
        assert not text[span[0] : span[1]].isspace()


@settings(max_examples=100, deadline=None)
@given(answers, limits, st.data())
def test_streaming_cut_inside_every_cluster_gives_the_same_messages(
    text: str, limit: int, data: st.DataObject
) -> None:
    # Every cluster of more than one code point arrives in pieces, plus some random cuts.
    edges = cluster_edges(text)
    inside = [at for at in range(1, len(text)) if at not in edges]
    cuts = sorted({*inside, *data.draw(st.lists(st.integers(0, len(text)), max_size=20))})
    deltas = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    assert stream(text, deltas, limit) == split_for_discord(text, limit)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(graphemes, words, spaces, newlines), min_size=1, max_size=30), st.data())
def test_a_cluster_boundary_is_fixed_once_the_next_character_arrives(
    pieces: list[str], data: st.DataObject
) -> None:
    # ReplySplitter relies on this property of \X: a cut decided on the text so far, with one
    # character after it, stays right whatever text comes later.
    text = "".join(pieces)
    edges = cluster_edges(text)
    arrived = data.draw(st.integers(1, len(text)))
    so_far = {edge for edge in cluster_edges(text[:arrived]) if edge < arrived}
    assert so_far == {edge for edge in edges if edge < arrived}
    # And segmenting from any cluster boundary gives the clusters after it.
    start = data.draw(st.sampled_from(sorted(edges)))
    assert {start + edge for edge in cluster_edges(text[start:])} == {
        edge for edge in edges if edge >= start
    }
