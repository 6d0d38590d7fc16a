"""Application commands: registration (bulk overwrite) and its validation."""

from __future__ import annotations

import copy
from typing import Any

from tests.standins.discord.errors import error, form_error, missing_access
from tests.standins.discord.objects import ApiCall
from tests.standins.discord.protocol import (
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    COMMAND_NAME,
    COMMAND_PRIMARY_ENTRY_POINT,
    COMMAND_USER,
    MAX_CHOICES,
    MAX_COMMANDS,
    MAX_OPTIONS,
    OPTION_SUB_COMMAND,
    OPTION_SUB_COMMAND_GROUP,
)


class Commands:
    """Application commands as ``CommandTree.sync()`` registers them."""

    # ---- REST routes: application commands ----------------------------------------------

    @property
    def application_id(self) -> int:
        """The app's id (READY's ``application.id``): the bot user's id, as for today's apps."""
        return self.bot_user.id

    def _check_application(self, call: ApiCall) -> None:
        if call.params["application_id"] != str(self.application_id):
            raise missing_access()

    def _command_guild(self, call: ApiCall) -> int:
        try:
            return self.guild_of(int(call.params["guild_id"])).id
        except (KeyError, ValueError):
            raise error(404, 10004, "Unknown Guild") from None

    async def api_get_global_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return self.registered_commands()

    async def api_get_guild_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return self.registered_commands(self._command_guild(call))

    async def api_overwrite_global_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return await self._overwrite_commands(None, call.body)

    async def api_overwrite_guild_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return await self._overwrite_commands(self._command_guild(call), call.body)

    async def _overwrite_commands(self, guild_id: int | None, body: Any) -> list[dict[str, Any]]:
        """Bulk overwrite: validate every command, then replace the scope's commands.

        A command keeps its id (and version, if unchanged) when one of the same name and
        type was there; the others get new ids; commands not in ``body`` are deleted.
        """
        if not isinstance(body, list):
            raise form_error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType.")
        checked = [
            self._checked_command(raw, [index], in_guild=guild_id is not None)
            for index, raw in enumerate(body)
        ]
        if sum(c["type"] == COMMAND_CHAT_INPUT for c in checked) > MAX_COMMANDS:
            raise form_error(
                [], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_COMMANDS} or fewer in length."
            )
        seen: set[tuple[str, int]] = set()
        for index, command in enumerate(checked):
            key = (command["name"], command["type"])
            if key in seen:
                raise form_error(
                    [index, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
        previous = {(c["name"], c["type"]): c for c in self._commands.get(guild_id, [])}
        stored = []
        for command in checked:
            before = previous.get((command["name"], command["type"]))
            unchanged = before is not None and all(before.get(k) == v for k, v in command.items())
            stored.append(
                {
                    "id": before["id"] if before else str(self._snowflake()),
                    "application_id": str(self.application_id),
                    "version": before["version"]
                    if before and unchanged
                    else str(self._snowflake()),
                    **command,
                    **({"guild_id": str(guild_id)} if guild_id is not None else {}),
                }
            )
        self._commands[guild_id] = stored
        await self.notify()
        return copy.deepcopy(stored)

    @staticmethod
    def _checked_name(name: Any, path: list[str | int], *, chat_input: bool) -> str:
        if not isinstance(name, str):
            raise form_error(path, "BASE_TYPE_REQUIRED", "This field is required")
        if not 1 <= len(name) <= 32:
            raise form_error(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if chat_input and (not COMMAND_NAME.fullmatch(name) or name != name.lower()):
            raise form_error(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        return name

    @staticmethod
    def _checked_description(description: Any, path: list[str | int]) -> str:
        if not isinstance(description, str):
            raise form_error(path, "BASE_TYPE_REQUIRED", "This field is required")
        if not 1 <= len(description) <= 100:
            raise form_error(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        return description

    def _checked_command(
        self, raw: Any, path: list[str | int], *, in_guild: bool
    ) -> dict[str, Any]:
        """One command of a bulk overwrite, as Discord stores it (without id and version)."""
        if not isinstance(raw, dict):
            raise form_error(
                path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
            )
        kind = raw.get("type") or COMMAND_CHAT_INPUT
        if kind not in (
            COMMAND_CHAT_INPUT,
            COMMAND_USER,
            COMMAND_MESSAGE,
            COMMAND_PRIMARY_ENTRY_POINT,
        ):
            raise form_error(
                [*path, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}."
            )
        chat_input = kind == COMMAND_CHAT_INPUT
        command: dict[str, Any] = {
            "type": kind,
            "name": self._checked_name(raw.get("name"), [*path, "name"], chat_input=chat_input),
            "name_localizations": raw.get("name_localizations"),
            # Context menu commands have an empty description.
            "description": self._checked_description(raw.get("description"), [*path, "description"])
            if chat_input
            else "",
            "description_localizations": raw.get("description_localizations"),
            "default_member_permissions": None,
            "nsfw": bool(raw.get("nsfw")),
            "integration_types": [0],
        }
        permissions = raw.get("default_member_permissions")
        if permissions is not None:
            if isinstance(permissions, bool) or not str(permissions).isdigit():
                raise form_error(
                    [*path, "default_member_permissions"], "NUMBER_TYPE_COERCE", "Value is not int."
                )
            command["default_member_permissions"] = str(int(permissions))  # a string, always
        if chat_input and raw.get("options"):
            command["options"] = self._checked_options(raw["options"], [*path, "options"])
        if not in_guild:  # contexts and install types only apply to global commands
            command["dm_permission"] = raw.get("dm_permission") is not False
            command["contexts"] = self._checked_values(
                raw.get("contexts"), [*path, "contexts"], (0, 1, 2)
            )
            command["integration_types"] = self._checked_values(
                raw.get("integration_types"), [*path, "integration_types"], (0, 1)
            ) or [0]
        return command

    @staticmethod
    def _checked_values(values: Any, path: list[str | int], allowed: tuple[int, ...]) -> Any:
        if values is None:
            return None
        if not isinstance(values, list):
            raise form_error(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType.")
        for index, value in enumerate(values):
            if value not in allowed:
                choices = ", ".join(map(str, allowed))
                raise form_error(
                    [*path, index], "BASE_TYPE_CHOICES", f"Value must be one of {{{choices}}}."
                )
        return list(values)

    def _checked_options(self, options: Any, path: list[str | int]) -> list[dict[str, Any]]:
        """Options of a chat input command (or subcommand), checked like Discord does."""
        if not isinstance(options, list):
            raise form_error(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType.")
        if len(options) > MAX_OPTIONS:
            raise form_error(
                path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length."
            )
        checked: list[dict[str, Any]] = []
        names: set[str] = set()
        optional_seen = False
        for index, raw in enumerate(options):
            where: list[str | int] = [*path, index]
            if not isinstance(raw, dict):
                raise form_error(
                    where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
                )
            kind = raw.get("type")
            if kind not in range(1, 12):
                raise form_error(
                    [*where, "type"],
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.",
                )
            name = self._checked_name(raw.get("name"), [*where, "name"], chat_input=True)
            if name in names:
                raise form_error(
                    [*where, "name"],
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
            option = {k: v for k, v in raw.items() if v is not None}
            option["description"] = self._checked_description(
                raw.get("description"), [*where, "description"]
            )
            if kind in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
                if raw.get("options"):
                    option["options"] = self._checked_options(raw["options"], [*where, "options"])
            else:
                required = bool(raw.get("required"))
                if required and optional_seen:
                    raise form_error(
                        where,
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
                optional_seen = optional_seen or not required
                if len(raw.get("choices") or []) > MAX_CHOICES:
                    raise form_error(
                        [*where, "choices"],
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {MAX_CHOICES} or fewer in length.",
                    )
            checked.append(option)
        return checked
