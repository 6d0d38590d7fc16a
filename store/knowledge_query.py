"""A person's search words, read once and written for each backend's full-text search.

`parse_query` reads any text the way PostgreSQL's websearch_to_tsquery does (words are
ANDed; "quoted phrases"; `or` between words; `-word` excludes), keeping only \\w runs,
so no text is an FTS syntax error; `Query` renders that reading as an SQLite FTS5 query
or as websearch_to_tsquery's text, so both backends look for the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# PostgreSQL's 'english' stop words (Snowball's list), left out of SQLite's query too,
# so "what did we decide about the deploy" means "decide deploy" on both backends.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can did do does doing don down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own s same she should so some such t than that the their theirs
    them themselves then there these they this those through to too under until up very was
    we were what when where which while who whom why will with you your yours yourself
    yourselves""".split()
)

_CHUNK = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Query:
    """A person's query as read by `parse_query`: all `groups` must match (each group
    is alternatives: one of its phrases), and none of `excluded`. A phrase is words."""

    groups: tuple[tuple[tuple[str, ...], ...], ...]
    excluded: tuple[tuple[str, ...], ...]

    def fts5(self, tags: Sequence[Sequence[str]] = ()) -> str:
        """SQLite FTS5 query text on the `text` column, every phrase quoted and made only
        of \\w characters; each of `tags` (alternatives) must match the `tags` column too."""

        def phrase(words: Sequence[str]) -> str:
            return '"' + " ".join(words) + '"'

        expression = " AND ".join(
            "(" + " OR ".join(map(phrase, group)) + ")" for group in self.groups
        )
        excluded = "".join(f" NOT {phrase(p)}" for p in self.excluded)
        required = "".join(
            " AND tags : (" + " OR ".join(phrase((t,)) for t in group) + ")" for group in tags
        )
        return f"text : (({expression}){excluded}){required}"

    def websearch(self) -> str:
        """The same query as websearch_to_tsquery's text (which never raises on any)."""

        def phrase(words: tuple[str, ...]) -> str:
            return '"' + " ".join(words) + '"'

        positive = " ".join(" or ".join(map(phrase, group)) for group in self.groups)
        return " ".join([positive, *(f"-{phrase(p)}" for p in self.excluded)])


def parse_query(text: str) -> Query | None:
    """Read a person's words as websearch_to_tsquery does; None when no word is left to
    look for (empty, punctuation or emoji only, stop words only, or only exclusions:
    `only_excludes` tells that case apart).

    Only \\w runs survive as words (the characters both backends index), so quotes, FTS
    operators (NEAR, AND, *, ^, :) and brackets are plain text here. Stop words are left
    out of unquoted words, as PostgreSQL's 'english' configuration does, and a quoted
    phrase made only of stop words is left out too (PostgreSQL's index holds none).
    """
    groups, excluded = _read(text)
    if not groups:
        return None
    return Query(tuple(tuple(g) for g in groups), tuple(excluded))


def only_excludes(text: str) -> bool:
    """Whether `text` names words to leave out ("-launch") and none to look for."""
    groups, excluded = _read(text)
    return not groups and bool(excluded)


def _read(text: str) -> tuple[list[list[tuple[str, ...]]], list[tuple[str, ...]]]:
    """`text`'s groups of alternative phrases and its excluded phrases (`parse_query`)."""
    groups: list[list[tuple[str, ...]]] = []
    excluded: list[tuple[str, ...]] = []
    join_next = False
    for match in _CHUNK.finditer(text):
        negated, quoted, bare = match.groups()
        if bare is not None and bare.lower() == "or":
            join_next = bool(groups)
            continue
        if bare is not None:
            negated = "-" if bare.startswith("-") else ""
            words = tuple(w for w in _WORD.findall(bare.lower()) if w not in STOP_WORDS)
        else:  # a phrase keeps its stop words (SQLite matches them in place)...
            words = tuple(_WORD.findall(quoted.lower()))
            if STOP_WORDS.issuperset(words):  # ...but PostgreSQL cannot match them alone
                words = ()
        if not words:
            continue
        if negated:
            excluded.append(words)
        elif join_next:
            groups[-1].append(words)
        else:
            groups.append([words])
        join_next = False
    return groups, excluded
