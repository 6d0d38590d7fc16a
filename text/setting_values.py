"""Parsers of environment variable text for `config.load_settings`.

Each takes a getter (variable name -> stripped text, or None when unset) and raises
`ConfigError` with a one-line message that names the variable and says how to fix it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

Getter = Callable[[str], "str | None"]
Word = TypeVar("Word", bound=str)

MAX_URL_LENGTH = 2_000  # what browsers and servers reliably take
# The longest model name the bot takes, from OPENAI_MODEL or /settings model: usage is
# kept per model in the store's usage.model column, VARCHAR(200) (store/migrations.py).
MAX_MODEL_NAME = 200
MAX_SNOWFLAKE = 2**64 - 1  # Discord ids are unsigned 64-bit numbers, never 0

INTEGER = re.compile(r"-?[0-9]+")
DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
SNOWFLAKE = re.compile(r"[0-9]{1,20}")
NUMBER_RANGE = re.compile(r"([0-9]{1,9})(?:-([0-9]{1,9}))?")
# Straight, curly and angle quote marks, as pasted around a key (the look-alikes are the point).
QUOTES = "\"'`‘’‚‛“”„‟«»‹›"  # noqa: RUF001
# The host (a name or a bracketed IPv6 address) and port of a URL's netloc.
HOST_AND_PORT = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^\[\]:]*))(?::(?P<port>.*))?")
HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
NUMERIC_HOST = re.compile(r"[0-9.]+")


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line meant for the user."""


def model_name_problem(name: str) -> str | None:
    """Why `name` cannot be a model name the bot uses and keeps usage for, or None:
    spaces or control characters, or longer than MAX_MODEL_NAME. Worded to follow
    "<where it came from> must be a model name: " in one line."""
    if not name or not name.isprintable() or any(c.isspace() for c in name):
        return "a model name has no spaces or control characters"
    if len(name) > MAX_MODEL_NAME:
        return (
            f"a model name is at most {MAX_MODEL_NAME} characters (the store keeps usage "
            f"per model), and this one has {len(name):,}"
        )
    return None


def plain_decimal(text: str) -> float:
    """`text` as a number if it is a plain decimal such as 12 or 0.5; NaN otherwise.

    float() would also take 'nan', 'inf', '1_0' and '٣'.
    """
    return float(text) if DECIMAL.fullmatch(text) else math.nan


def quoted(text: str) -> str:
    """`text` as an error message shows it: quoted, escaped onto one line, cut if long."""
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}..."


def require_header_safe(name: str, secret: str, what: str) -> None:
    """Refuse a `secret` that cannot be sent in an HTTP header, without showing it.

    A header value must be printable ASCII; a key with a curly quote, a non-ASCII
    letter or a space would otherwise be accepted and then fail on every request.
    """
    if secret[0] in QUOTES or secret[-1] in QUOTES:
        raise ConfigError(
            f"{name} starts or ends with a quote mark: remove the quotes and paste only the "
            f"{what} itself."
        )
    for char in secret:
        if not "!" <= char <= "~":
            shown = "a space" if char.isspace() else f"{char!r} (U+{ord(char):04X})"
            raise ConfigError(
                f"{name} contains {shown}, which cannot be sent in an HTTP header: copy the "
                f"{what} again and paste only the {what} itself."
            )


def http_url(get: Getter, name: str, *, example: str) -> str | None:
    text = get(name)
    if text is None:
        return None
    problem = url_problem(text)
    if problem is not None:
        raise ConfigError(
            f"{name} must be an http(s) URL such as {example}, got {quoted(text)}: {problem}."
        )
    return text


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as the base URL of an HTTP API, or None if nothing."""
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    # Non-ASCII hosts would need IDNA encoding, which can fail later; ask for the
    # ASCII (punycode) form instead.
    if not all("!" <= c <= "~" for c in url):
        return "it may contain only ASCII letters, digits and punctuation, and no spaces"
    try:
        parts = urlsplit(url)
    except ValueError as error:  # an unclosed '[', or brackets around a non-address
        return f"it cannot be read ({error})"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    match = HOST_AND_PORT.fullmatch(parts.netloc.rpartition("@")[2])
    if match is None:
        return "brackets may only enclose an IPv6 address, with at most :port after it"
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return f"{match['ipv6']!r} in brackets is not an IPv6 address"
        if "%" in match["ipv6"]:  # a zone id: not every HTTP client takes one
            return "the IPv6 address may not have a zone id (%...)"
    elif not match["host"]:
        return "the host name is missing"
    elif not HOST_NAME.fullmatch(match["host"]):
        return (
            "the host must be a name of letters, digits, '-', '_' and dots, or an IP "
            "address (an IPv6 address in [brackets])"
        )
    elif NUMERIC_HOST.fullmatch(match["host"]):
        # Read as an IPv4 address by HTTP clients (httpx refuses an invalid one).
        try:
            ipaddress.IPv4Address(match["host"])
        except ValueError:
            return f"{match['host']!r} is not an IPv4 address"
    port = match["port"]
    if port is not None and not (
        port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535  # ASCII: checked above
    ):
        return f"the port must be a number from 1 to 65535, got {port!r}"
    return None


def integer(get: Getter, name: str, default: int, *, minimum: int, maximum: int) -> int:
    text = get(name)
    if text is None:
        return default
    # Plain ASCII digits only: int() would also take '1_000', '+5' and '٣'.
    if INTEGER.fullmatch(text) is None:
        raise ConfigError(f"{name} must be a whole number, got {quoted(text)}.")
    # Every bound is below 10**18; int() would refuse more than 4,300 digits.
    too_long = len(text.lstrip("-").lstrip("0")) > 18
    if too_long or not minimum <= int(text) <= maximum:
        raise ConfigError(
            f"{name} must be a whole number from {minimum} to {maximum:,}, got {quoted(text)}."
        )
    return int(text)


def word(get: Getter, name: str, words: tuple[Word, ...], default: Word) -> Word:
    """The one of `words` that `name` is set to, in any case; `default` if unset."""
    text = get(name)
    if text is None:
        return default
    # The words are all lower case (LOG_LEVEL's, like logging's, all upper case).
    given = text.upper() if words[0].isupper() else text.lower()
    for word in words:
        if word == given:
            return word
    if len(words) == 2:
        choices = f"{words[0]!r} or {words[1]!r}"
    else:
        choices = f"one of {', '.join(words)}"
    raise ConfigError(f"{name} must be {choices}, got {quoted(given)}.")


def id_list(get: Getter, name: str) -> frozenset[int]:
    text = get(name)
    if text is None:
        return frozenset()
    ids = set()
    for part in text.replace(",", " ").split():
        # isdigit() alone also passes '²' and '٣', which int() then refuses or misreads.
        if not SNOWFLAKE.fullmatch(part) or not 1 <= int(part) <= MAX_SNOWFLAKE:
            raise ConfigError(
                f"{name} must be Discord ids separated by commas, got {quoted(part)} "
                "(with Developer Mode on, right-click a channel, user or role -> Copy ID)."
            )
        ids.add(int(part))
    return frozenset(ids)


def boolean(get: Getter, name: str, *, default: bool) -> bool:
    text = get(name)
    if text is None:
        return default
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {quoted(text)}.")


def seconds(get: Getter, name: str, default: float, *, maximum: float) -> float:
    """A number of seconds, more than 0 and at most `maximum`."""
    text = get(name) or f"{default:g}"
    value = plain_decimal(text)
    if not 0 < value <= maximum:
        raise ConfigError(
            f"{name} must be a number of seconds between 0 and {maximum:g}, got {quoted(text)}."
        )
    return value


def price(get: Getter, name: str, maximum: float) -> float | None:
    """A price in the owner's currency per million tokens, or None when unset."""
    text = get(name)
    if text is None:
        return None
    value = plain_decimal(text)
    if not 0 <= value <= maximum:
        raise ConfigError(
            f"{name} must be a price per million tokens from 0 to {maximum:,.0f}, "
            f"such as 0.40, got {quoted(text)}."
        )
    return value


def number_ranges(get: Getter, name: str, *, below: int) -> tuple[int, ...] | None:
    """Whole numbers from 0 to `below` - 1 written as a list of numbers and ranges
    ("0,1", "0-3", "0-1, 4"), sorted without repeats; None when unset."""
    text = get(name)
    if text is None:
        return None
    numbers: set[int] = set()
    for part in text.replace(",", " ").split():
        match = NUMBER_RANGE.fullmatch(part)
        if match is None:
            raise ConfigError(
                f"{name} must be numbers or ranges separated by commas, such as 0,1 or 0-3, "
                f"got {quoted(part)}."
            )
        low, high = int(match[1]), int(match[2] or match[1])
        if low > high:
            raise ConfigError(
                f"{name} has a range that runs backwards: write {quoted(f'{high}-{low}')}, "
                f"got {quoted(part)}."
            )
        if high >= below:
            raise ConfigError(
                f"{name} must name numbers from 0 to {below - 1}, got {quoted(part)}."
            )
        numbers.update(range(low, high + 1))
    return tuple(sorted(numbers)) or None


def port(get: Getter, name: str) -> int | None:
    """A TCP port from 1 to 65535, or None when unset."""
    if get(name) is None:
        return None
    return integer(get, name, 0, minimum=1, maximum=65_535)


def host(get: Getter, name: str, default: str) -> str:
    """An IP address or host name to listen on; `default` when unset."""
    text = get(name) or default
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if HOST_NAME.fullmatch(text) is None or NUMERIC_HOST.fullmatch(text):
            raise ConfigError(
                f"{name} must be an IP address or host name such as 127.0.0.1 or 0.0.0.0, "
                f"got {quoted(text)}."
            ) from None
    return text
