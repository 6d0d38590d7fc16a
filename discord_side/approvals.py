"""Asking a person before a tool call that can change the world: Allow and Deny buttons.

`ask_approval` posts what the model wants to run (the tool's label and its arguments,
shortened) with an `ApprovalView`, and waits: only the person whose message is being
answered, or an ADMIN_USER_IDS user, may press (permissions.may_decide_approval; others
get a private refusal and nothing changes); no press within APPROVAL_TIMEOUT counts as
Deny. The message is then edited to say what was decided, and by whom, without buttons.

The view lives in this process only: after a restart its buttons answer nothing, and
the call it asked about is gone with the answer it belonged to (so it was never run).
The arguments are the model's text: shown in a code block whose fence they cannot close,
with no mention that can ping (the client sends AllowedMentions.none() anyway).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from discord_side.failures import REQUEST_FAILURES, describe
from discord_side.permissions import PermissionNotes, may_decide_approval, may_reply
from text.control import ZERO_WIDTH_SPACE
from text.markdown import BACKTICK_LOOKALIKE, inline_code, one_line
from tools.base import Tool, Toolbox, ToolCall
from tools.combined import Combined

if TYPE_CHECKING:
    from discord.abc import Messageable

    from config import Settings
    from conversation.channel_settings import Effective
    from conversation.tool_rounds import Approve, ToolOptions
    from discord_side.replies import Reply

log = logging.getLogger("chatbot")

MAX_ARGUMENTS = 600  # characters of arguments shown (a message holds 2,000)
MAX_NAME = 64
REFUSAL = "Only {asker} (who asked) or a bot admin can decide this."
ALREADY_DECIDED = "This was already decided."


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of an approval request: `allowed`, and who pressed (None: nobody in
    time, or the answer ended first)."""

    allowed: bool
    by: str | None = None


def _name(display_name: str) -> str:
    """A person's name as plain text: no markdown, and no @everyone / mention syntax."""
    name = discord.utils.escape_markdown(one_line(display_name, MAX_NAME))
    return name.replace("@", "@" + ZERO_WIDTH_SPACE).replace("<", "<" + ZERO_WIDTH_SPACE)


def shown_arguments(arguments: str, limit: int = MAX_ARGUMENTS) -> str:
    """The model's JSON `arguments` for people to read: compact JSON on one line (the
    text as written when it is not JSON), at most `limit` characters, its backticks
    replaced by look-alikes so it cannot close the code block it is shown in."""
    try:
        parsed: Any = json.loads(arguments)
    except ValueError:
        text = arguments
    else:
        text = json.dumps(parsed, ensure_ascii=False, separators=(", ", ": "))
    return one_line(text, limit).replace("`", BACKTICK_LOOKALIKE) or "{}"


def request_text(asker: str, call: ToolCall, tool: Tool) -> str:
    """The approval message: who asked, the tool and its arguments (shortened)."""
    return (
        f"🛠️ To answer {_name(asker)}, the model wants to run "
        f"{inline_code(tool.label)} with:\n"
        f"```json\n{shown_arguments(call.arguments)}\n```"
        f"Allow it? Only {_name(asker)} or a bot admin can decide."
    )


def decided_text(asker: str, call: ToolCall, tool: Tool, decision: Decision | None) -> str:
    """The approval message once decided (`decision` None: the answer ended first)."""
    what = f"🛠️ {inline_code(tool.label)} with ```json\n{shown_arguments(call.arguments)}\n```"
    if decision is None:
        return what + "⏹️ Not run: the answer ended before anyone decided."
    if decision.by is None:
        return what + "⌛ Not run: nobody decided in time, so it counts as denied."
    if decision.allowed:
        return what + f"✅ Allowed by {_name(decision.by)}."
    return what + f"🚫 Denied by {_name(decision.by)}."


class ApprovalView(discord.ui.View):
    """Allow and Deny buttons that only `asker_id` or `admins` may press; the first
    valid press (or the timeout: Deny) sets `decision` and stops the view."""

    def __init__(self, asker_id: int, asker_name: str, *, admins: frozenset[int], timeout: float):
        super().__init__(timeout=timeout)
        self.asker_id = asker_id
        self.asker_name = asker_name
        self.admins = admins
        self.decision: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.decided: Decision | None = None  # set at the first valid press, or the timeout
        self.edit_to: Callable[[Decision], str] = lambda decision: ""
        self.message: discord.Message | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Anyone else pressing is told privately; the request keeps waiting (a refused
        press does not restart discord.py's timeout)."""
        if may_decide_approval(interaction.user.id, asker_id=self.asker_id, admins=self.admins):
            return True
        await interaction.response.send_message(
            REFUSAL.format(asker=_name(self.asker_name)), ephemeral=True
        )
        return False

    @discord.ui.button(label="Allow", style=discord.ButtonStyle.success, emoji="✅")
    async def allow(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._decide(interaction, allowed=True)

    @discord.ui.button(label="Deny", style=discord.ButtonStyle.danger, emoji="🚫")
    async def deny(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._decide(interaction, allowed=False)

    async def _decide(self, interaction: discord.Interaction, *, allowed: bool) -> None:
        if self.decided is not None:  # two presses at once: the first one counts
            await interaction.response.send_message(ALREADY_DECIDED, ephemeral=True)
            return
        decision = self.decided = Decision(allowed, interaction.user.display_name)
        self.stop()
        log.info(
            "tool call %s by %s (%s)",
            "allowed" if allowed else "denied",
            interaction.user,
            interaction.user.id,
        )
        try:
            # UPDATE_MESSAGE (type 7): the decision replaces the buttons, in the one
            # response, before the tool runs.
            await interaction.response.edit_message(content=self.edit_to(decision), view=None)
        finally:
            self.decision.set_result(decision)

    async def on_timeout(self) -> None:
        if self.decided is None:
            self.decided = Decision(allowed=False)
            self.decision.set_result(self.decided)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        # The decision is made before the edit: a failed edit changes nothing but the look.
        log.warning("approval buttons: %s", describe(error))


async def ask_approval(
    channel: Messageable,
    asker: discord.abc.User,
    call: ToolCall,
    tool: Tool,
    *,
    admins: frozenset[int],
    timeout: float,  # noqa: ASYNC109 - it is the view's timeout (a press, not a call)
    question: discord.Message | None = None,
    notes: PermissionNotes | None = None,
) -> bool:
    """Ask in `channel` whether `call` of `tool` may run; True only if `asker` or one
    of `admins` pressed Allow within `timeout` seconds.

    Posted as a reply to `question` (the asking message) where it is in `channel` and
    the bot may reply (permissions.may_reply with `notes`, those of `channel`). A post
    Discord refuses or leaves unanswered counts as Deny (logged). Cancelled (the answer
    was cut off), the message is edited to say so, then the cancellation goes on.
    """
    view = ApprovalView(asker.id, asker.display_name, admins=admins, timeout=timeout)
    view.edit_to = lambda decision: decided_text(asker.display_name, call, tool, decision)
    reference = None
    if question is not None and notes is not None and question.channel.id == notes.channel_id:
        if may_reply(question, notes):
            reference = question.to_reference(fail_if_not_exists=False)
    text = request_text(asker.display_name, call, tool)
    try:
        view.message = await channel.send(text, view=view, reference=reference)  # type: ignore[arg-type]
    except REQUEST_FAILURES as error:
        view.stop()
        log.warning("could not ask for approval of %s: %s", tool.label, describe(error))
        return False
    log.info("asked %s (%s) to approve %s", asker, asker.id, tool.label)
    try:
        decision = await asyncio.shield(view.decision)
    except asyncio.CancelledError:
        view.stop()
        if view.decided is None:
            view.decided = Decision(allowed=False)
            await _edit_quietly(view.message, view.edit_to(None))
        raise
    if decision.by is None:  # timed out: nobody pressed, so no interaction to answer
        await _edit_quietly(view.message, view.edit_to(decision))
    return decision.allowed


async def _edit_quietly(message: discord.Message, text: str) -> None:
    """Replace `message`'s text by `text` and remove its buttons; a failure is logged."""
    try:
        async with asyncio.timeout(10):
            await message.edit(content=text, view=None)
    except (*REQUEST_FAILURES, TimeoutError) as error:
        log.warning("could not edit the approval message: %s", describe(error))


def approver(
    question: discord.Message,
    channel: Messageable,
    *,
    admins: frozenset[int],
    timeout: float,
    notes: PermissionNotes | None = None,
) -> Approve:
    """The `approve` of one answer: asks `question`'s author in `channel` (where the
    answer is posted) through `ask_approval`."""

    async def approve(call: ToolCall, tool: Tool) -> bool:
        return await ask_approval(
            channel,
            question.author,
            call,
            tool,
            admins=admins,
            timeout=timeout,
            question=question,
            notes=notes,
        )

    return approve


class ToolUse:
    """Which tools an answer is offered and who approves their calls: `tools_for` is
    `Answers.tools_for` (tool_rounds.ToolsFor), set by bot.py's setup_hook.

    `toolbox` (Services.toolbox: MCP_CONFIG's servers) is offered unless /settings
    tools is off where the answer goes, or it has no tools; `knowledge` (the built-in
    knowledge tools, knowledge/offer.py) gives each answer its own read-only tools, bound
    to who may read it, where /settings knowledge is on (whatever /settings tools says).
    A call that needs approval asks the author of the message answered, in the channel
    the answer goes to, and waits `timeout` (APPROVAL_TIMEOUT) seconds at most;
    ADMIN_USER_IDS may decide too.
    """

    def __init__(
        self,
        settings: Settings,
        toolbox: Toolbox | None,
        knowledge: Callable[[Reply, Effective], Toolbox | None] | None = None,
    ) -> None:
        self.toolbox = toolbox
        self.knowledge = knowledge
        self.admins = settings.access.admins
        self.timeout = settings.approval_timeout

    def tools_for(self, reply: Reply, effective: Effective) -> ToolOptions:
        """`Answers.answer`'s `toolbox` and `approve` for the answer `reply` shows where
        `effective` applies; none (no tool offered) where there are none to offer."""
        offered: list[Toolbox] = []
        if self.knowledge is not None and (known := self.knowledge(reply, effective)):
            offered.append(known)
        if effective.tools and self.toolbox is not None and self.toolbox.tools():
            offered.append(self.toolbox)
        if not offered:
            return {}
        approve = approver(
            reply.message,
            reply.channel,
            admins=self.admins,
            timeout=self.timeout,
            notes=reply.notes,
        )
        toolbox = offered[0] if len(offered) == 1 else Combined(*offered)
        return {"toolbox": toolbox, "approve": approve}
