"""One answer: asking the model and showing what it says, by one deadline.

The request is built from a channel's memory within the budget its model's server
really takes (`ContextWindow`). What a refusal teaches (a smaller window, a server
that takes no images) is learnt inside the model client's one loop of retries
(model/retries.py), which asks again with the rebuilt request. Any other failure is
told to the user in one sentence by its cause (model/failures.py). An answer cut short
(by the reply cap, by its deadline, by a stream that ended without a finish reason) is
shown with a note that says so (notes.py). Every answer's tokens are recorded in the
usage and the asker's daily allowance. With a toolbox, the model may run tools first
(tool_rounds.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
import openai

from config import Settings
from conversation.access import UserLimits
from conversation.channel_settings import Effective
from conversation.notes import answer_notes, failure_sentence
from conversation.prompts import MIN_HISTORY_BUDGET, Prompt, PromptBuilder
from conversation.tool_rounds import Approve, ToolRounds, ToolsFor, no_tools
from conversation.usage import UsageLedger
from discord_side.replies import Reply, show_typing
from memory import ChannelMemory
from model.client import ChatModel
from model.context_window import ContextWindow
from model.errors import DeadlinePassed, EmptyAnswer, ModelError
from model.failures import Cause, Failure, classify, user_message
from model.reading import RETRACT, Answer
from model.request import Caller
from text.markdown import subtext
from text.tokens import REPLY_PRIMING, counts_exactly
from tools.base import Tool, Toolbox

if TYPE_CHECKING:
    from operations.metrics import Metrics

log = logging.getLogger("chatbot")

# An empty answer to a prompt at least this share of the budget is taken for an overflow.
NEAR_BUDGET = 0.75

# Called with the model whose server refused the images of a request: no images are
# sent to it again, in any channel; returns the note that goes first under the answer.
RefuseImages = Callable[[str], str]


class Asking:
    """One answer's request as it is learnt: the prompt built from `memory` by `prompts`
    for the channel's settings `effective`, the `note` to show under the answer, and
    the answer's deadline (event-loop time). `learn` is its part of the model client's
    loop (model/retries.py). `reserved`: prompt tokens kept for the tool definitions;
    `extra`: the tool rounds' messages after the prompt (request only, never memory),
    `extra_tokens` their count."""

    def __init__(
        self,
        answers: Answers,
        reply: Reply,
        memory: ChannelMemory,
        prompts: PromptBuilder,
        effective: Effective,
        note: str | None,
        refuse_images: RefuseImages | None,
        reserved: int = 0,
    ) -> None:
        self.answers = answers
        self.channel_id = reply.channel.id
        self.memory = memory
        self.prompts = prompts
        self.effective = effective
        self.note = note
        self.refuse_images = refuse_images
        self.window = answers.window(effective.model, prompts)
        self.deadline = answers.model.deadline()
        self.shortened = False  # the prompt was shortened after a refusal
        self.images_refused = False
        self.reserved = reserved
        # The prompt cache key and safety identifier of its requests (model/request.py).
        self.caller = Caller(reply.channel.id, reply.message.author.id)
        self.extra: list[dict[str, Any]] = []
        self.extra_tokens = 0
        # Who answers: the model, or the tool rounds in its place (`Answers.answer`).
        self.asker: ChatModel | ToolRounds = answers.model
        self.prompt = prompts.prompt(memory, max(self.budget - reserved, self.window.floor))

    @property
    def budget(self) -> int:
        """The most prompt tokens the whole request may have (the window's budget)."""
        return self.window.budget

    @property
    def counted(self) -> int:
        """The request's prompt tokens by the bot's count, tool rounds included."""
        return self.prompt.tokens + self.reserved + self.extra_tokens

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's messages: the prompt, then the tool rounds' messages."""
        return self.prompt.messages + self.extra

    @property
    def options(self) -> dict[str, Any]:
        """The arguments besides the messages for `ChatModel.complete`/`stream`."""
        return {
            "model": self.effective.model,
            "reasoning_effort": self.effective.reasoning_effort,
            "deadline": self.deadline,
            "learn": self.learn,
            "caller": self.caller,
        }

    def learn(self, error: Exception) -> list[dict[str, Any]] | None:
        """After `error`: the messages to ask again with, rebuilt from memory, or None.

        A prompt refused as too long is shortened once, to the budget the refusal
        taught the model's `ContextWindow`. A request whose images the server refused
        is asked again without images (`refuse_images`), the note it returns first.
        """
        failure = self.answers.classify(error, self.prompt, self.window)
        if failure.cause is Cause.CONTEXT_TOO_LONG and not self.shortened:
            self._shorten(failure)
        elif (
            failure.cause is Cause.IMAGES_REFUSED
            and self.refuse_images is not None
            and not self.images_refused
            and _has_images(self.prompt)
        ):
            log.warning("channel %s: the model refused images; sending none again", self.channel_id)
            refused = self.refuse_images(self.effective.model)
            self.note = "\n".join(filter(None, [refused, self.note]))
            self.images_refused = True
            self.shortened = False
        else:
            return None
        room = self.window.budget - self.reserved - self.extra_tokens
        self.prompt = self.prompts.prompt(self.memory, max(room, self.window.floor))
        return self.messages

    def _shorten(self, failure: Failure) -> None:
        window, counted = self.window, self.counted
        budget = window.refused(
            counted, window=failure.context_window, server_count=failure.prompt_tokens
        )
        log.warning(
            "channel %s: the model service found the prompt too long (%d tokens "
            "by the bot's count; window %s; %s); using a budget of %d tokens for "
            "model %s from now on, and asking again",
            self.channel_id,
            counted,
            failure.context_window or "not stated",
            failure.detail.splitlines()[0][:160] if failure.detail else "no detail",
            budget,
            window.model,
        )
        self.shortened = True


class Answers:
    """Asks the model for answers and shows them; one `ContextWindow` per model."""

    def __init__(
        self, settings: Settings, model: ChatModel, usage: UsageLedger, limits: UserLimits
    ) -> None:
        self.settings = settings
        self.model = model
        self.usage = usage
        self.limits = limits
        # Per model: the prompt budget its server really takes, learnt from its answers.
        self.windows: dict[str, ContextWindow] = {}
        # Per answer: the tools offered and who approves them (the bot's wiring sets it).
        self.tools_for: ToolsFor = no_tools
        # With HEALTH_PORT: answers, their tokens and failures are counted (bot.py sets it).
        self.metrics: Metrics | None = None

    async def answer(
        self,
        reply: Reply,
        memory: ChannelMemory,
        prompts: PromptBuilder,
        effective: Effective,
        note: str | None,
        *,
        refuse_images: RefuseImages | None = None,
        toolbox: Toolbox | None = None,
        approve: Approve | None = None,
    ) -> tuple[Answer, Prompt] | None:
        """Answer from `memory` (requests built by `prompts`) by one deadline, streamed
        or whole as the channel's settings `effective` say, with `note` under it; the
        answer and the prompt it was given, or None when it failed (the user is told
        why).

        What a refusal teaches is learnt and the model asked again (`Asking.learn`);
        `refuse_images` is called when the server refused the request's images.
        With a `toolbox` that has tools (and a server that has not refused them), the
        model may call them first (tool_rounds.py), each needing approval through
        `approve`; without one, no `tools` are sent.
        """
        tools = list(toolbox.tools()) if toolbox is not None else []
        if not self.model.takes_tools(effective.model):
            tools = []
        reserved = ToolRounds.definitions_tokens(tools, prompts.counter.count_message)
        asking = Asking(
            self, reply, memory, prompts, effective, note, refuse_images, reserved if tools else 0
        )
        if tools and toolbox is not None:
            asking.asker = self._tool_rounds(asking, reply, tools, toolbox, approve)
        started = time.monotonic()
        try:
            if effective.streaming:
                answer = await self._streamed(reply, asking)
            else:
                answer = await self._whole(reply, asking)
        except Exception as error:
            failure = self.classify(error, asking.prompt, asking.window)
            if self.metrics is not None:
                seconds = time.monotonic() - started
                self.metrics.failed(effective.model, seconds, failure.cause, error)
            await reply.drop_status()
            await self._report_failure(reply, error, failure, history_shortened=asking.shortened)
            return None
        if self.metrics is not None:
            cut_off = answer.finish_reason == "interrupted"
            self.metrics.answered(effective.model, time.monotonic() - started, cut_off=cut_off)
        asking.window.accepted(asking.prompt.tokens)
        if answer.prompt_tokens is not None:
            asking.window.observe(asking.counted, answer.prompt_tokens)
        return answer, asking.prompt

    def _tool_rounds(
        self,
        asking: Asking,
        reply: Reply,
        tools: list[Tool],
        toolbox: Toolbox,
        approve: Approve | None,
    ) -> ToolRounds:
        """The tool rounds that answer `asking` in the model's place (tool_rounds.py)."""
        return ToolRounds(
            self.model,
            tools,
            toolbox,
            approve,
            asking,
            reply,
            # A tool round: its tokens count, the answer is counted once, at the end.
            lambda answer: self._charge(reply, answer, asking, answers=0),
        )

    def window(self, model: str, prompts: PromptBuilder) -> ContextWindow:
        """The learnt prompt budget of `model` (one per model, for every channel)."""
        window = self.windows.get(model)
        if window is None:
            window = self.windows[model] = ContextWindow(
                model,
                self.settings.prompt_budget,
                reply_tokens=self.settings.max_reply_tokens,
                exact=counts_exactly(model),
                floor=prompts.system.tokens + MIN_HISTORY_BUDGET + REPLY_PRIMING,
            )
        return window

    def classify(self, error: Exception, prompt: Prompt, window: ContextWindow) -> Failure:
        """The failure `error` reports. An empty answer after a prompt with something to
        leave out is taken for a prompt too long for the server's window when it is a
        stream with no chunk at all (not even the role chunk every server sends first:
        llama-cpp-python's refusal), or an empty normal stop to a prompt near the budget
        in use or larger than any the server answered (LiteLLM's stream past the window:
        finish_reason "stop", no text; BerriAI/litellm#37710 shows its streams ending in a
        bare "stop" where the whole request fails)."""
        if isinstance(error, EmptyAnswer) and prompt.tokens > window.floor:
            near = prompt.tokens >= window.budget * NEAR_BUDGET
            near = near or prompt.tokens > window.largest_accepted
            if error.silent or (near and error.finish_reason in (None, "stop")):
                return Failure(Cause.CONTEXT_TOO_LONG, detail=str(error))
        return classify(error, deadline=self.settings.openai_timeout)

    async def _whole(self, reply: Reply, asking: Asking) -> Answer:
        """Get the whole answer, then post it with a note if it was cut short.

        Raises what `ChatModel.complete` raises; nothing was posted then.
        """
        async with show_typing(reply.channel):
            answer = await asking.asker.complete(asking.prompt.messages, **asking.options)
        if not answer.text:  # tool calls alone, where no tools were offered: none run
            raise EmptyAnswer(answer.finish_reason)
        self._charge(reply, answer, asking)
        await reply.whole(answer.text, answer_notes(answer, asking))
        return answer

    async def _streamed(self, reply: Reply, asking: Asking) -> Answer:
        """Show the answer while it streams; the answer (or what arrived).

        A stream that breaks or stalls after some text keeps that text visible, marked
        as cut off, and it is remembered as the bot's turn: it is what the channel saw.
        Raises what `ChatModel.stream` raises when nothing is shown.
        """
        answer = None
        try:
            async with show_typing(reply.channel):
                stream = asking.asker.stream(asking.prompt.messages, **asking.options)
                async for piece in stream:
                    if isinstance(piece, Answer):
                        answer = piece
                        self._charge(reply, answer, asking)
                    elif piece is RETRACT:
                        await reply.retract()
                    else:
                        reply.add(piece)
        except asyncio.CancelledError:
            # Shutdown closes off this answer: the tokens streamed so far were spent.
            if reply.text and answer is None:
                self._charge(reply, Answer(reply.text, None, None, "interrupted"), asking)
            raise
        except Exception as error:
            if not reply.text:
                await reply.finish()
                raise
            if isinstance(error, DeadlinePassed):
                log.warning("channel %s: the answer stream stalled: %s", reply.channel.id, error)
                why = f"the model stopped writing for {error.seconds:g} seconds."
            else:
                log.warning("channel %s: the answer stream broke: %r", reply.channel.id, error)
                why = user_message(classify(error, deadline=self.settings.openai_timeout))
            cut_off = subtext(f"⚠️ The answer was cut off: {why}")
            note = "\n".join(filter(None, [cut_off, asking.note]))
            answer = Answer(reply.text, None, None, "interrupted")
            self._charge(reply, answer, asking)
        else:
            assert answer is not None  # the stream ends with its Answer or raises
            if not reply.text:  # tool calls alone, where no tools were offered: none run
                raise EmptyAnswer(answer.finish_reason)
            note = answer_notes(answer, asking)
        await reply.finish(note)
        return answer

    def _charge(self, reply: Reply, answer: Answer, asking: Asking, *, answers: int = 1) -> None:
        """Record an answer's tokens in the stored usage and against its asker's daily
        allowance, before it is shown, so their next message is judged with it: the
        server's usage when it sent it, else the bot's count calibrated to the server's
        (model/context_window.py)."""
        message = reply.message
        effective, prompts = asking.effective, asking.prompts
        window = asking.window
        completion = answer.completion_tokens
        if completion is None:
            completion = window.server_tokens(prompts.counter.count_text(answer.text))
        prompt_tokens = answer.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = window.server_tokens(asking.counted)
        self.usage.record(
            user_id=message.author.id,
            guild_id=message.guild.id if message.guild else None,
            channel_id=reply.channel.id,
            model=effective.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            cached_tokens=answer.cached_tokens or 0,
            answers=answers,
        )
        if self.metrics is not None:
            self.metrics.charged(prompt_tokens, completion, answer.cached_tokens or 0)
        if self.limits.daily_tokens:
            self.limits.record_usage(
                message.author.id, prompt_tokens + completion, discord.utils.utcnow()
            )

    async def _report_failure(
        self, reply: Reply, error: Exception, failure: Failure, *, history_shortened: bool
    ) -> None:
        """Tell the user briefly why no answer came, by its cause; the log gets the detail."""
        channel_id = reply.channel.id
        if isinstance(error, DeadlinePassed):
            log.warning("channel %s: no answer from the model: %s", channel_id, error)
        elif isinstance(error, openai.OpenAIError | ModelError | TimeoutError):
            log.warning(
                "channel %s: no answer from the model (%s): %r",
                channel_id,
                failure.cause.value,
                error,
            )
        else:  # a reply the SDK could not parse, say: keep serving
            log.error("channel %s: unexpected failure", channel_id, exc_info=error)
        await reply.notice(failure_sentence(error, failure, history_shortened=history_shortened))


def _has_images(prompt: Prompt) -> bool:
    return any(isinstance(message["content"], list) for message in prompt.messages)


def log_answer(channel_id: int, prompt_tokens: int, answer: Answer, latency: float) -> None:
    """One INFO line per answered message; the API's usage figures when it sent them."""
    log.info(
        "answered channel=%s prompt_tokens=%s completion_tokens=%s cached_tokens=%s latency=%.2fs",
        channel_id,
        answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
        answer.completion_tokens,
        answer.cached_tokens,
        latency,
    )
