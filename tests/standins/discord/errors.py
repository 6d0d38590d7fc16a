"""Discord's error answers, as Discord words them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


# --------------------------------------------------------------------------------------
# Errors, as Discord words them.
# --------------------------------------------------------------------------------------
class DiscordError(Exception):
    """Raised by a route handler to answer with Discord's error JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def error(status: int, code: int, message: str) -> DiscordError:
    """A plain Discord error: ``{"message": ..., "code": ...}``."""
    return DiscordError(status, {"message": message, "code": code})


def invalid_form_body(field_name: str, code: str, message: str) -> DiscordError:
    """400 / 50035 with one field error, the way Discord reports validation failures."""
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return DiscordError(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})


def unauthorized() -> DiscordError:
    return error(401, 0, "401: Unauthorized")


def not_found() -> DiscordError:
    return error(404, 0, "404: Not Found")


def unknown_channel() -> DiscordError:
    return error(404, 10003, "Unknown Channel")


def unknown_member() -> DiscordError:
    return error(404, 10007, "Unknown Member")


def unknown_message() -> DiscordError:
    return error(404, 10008, "Unknown Message")


def unknown_user() -> DiscordError:
    return error(404, 10013, "Unknown User")


def missing_permissions() -> DiscordError:
    return error(403, 50013, "Missing Permissions")


def empty_message() -> DiscordError:
    return error(400, 50006, "Cannot send an empty message")


def form_error(path: Sequence[str | int], code: str, message: str) -> DiscordError:
    """400 / 50035 with the error nested at ``path``, e.g. ``["0", "options", "1", "name"]``.

    An empty path puts it at the top: ``{"errors": {"_errors": [...]}}``.
    """
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {str(key): errors}
    return DiscordError(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})


def nested_form_error(failure: DiscordError, key: str) -> DiscordError:
    """A 50035 raised for a body's fields, re-reported as fields of ``key`` ("data")."""
    if failure.body.get("code") != 50035:
        return failure
    return DiscordError(400, {**failure.body, "errors": {key: failure.body["errors"]}})


def missing_access() -> DiscordError:
    return error(403, 50001, "Missing Access")


def cannot_reply_without_history() -> DiscordError:
    return error(403, 160002, "Cannot reply without permission to read message history")


def unknown_interaction() -> DiscordError:
    return error(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordError:
    return error(400, 40060, "Interaction has already been acknowledged.")


def unknown_webhook() -> DiscordError:
    return error(404, 10015, "Unknown Webhook")


def invalid_webhook_token() -> DiscordError:
    return error(401, 50027, "Invalid Webhook Token")
