"""Files and pictures end to end: pastes, code, PDFs, screenshots, limits and read-back."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, ImageDraw

from config import DEFAULT_MODEL
from conversation.conversations import NO_VISION_NOTE
from memory import IMAGE_TURNS, ChannelMemory
from tests.helpers import final_messages, replies
from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.openai_standin import (
    OpenAIStandIn,
    Reply,
    image_size,
    image_tokens,
    prompt_tokens,
)
from tests.text.sample_files import make_pdf
from text.attachments import model_accepts_images

MB = 1024 * 1024
TRACE = "Traceback (most recent call last):\n" + "".join(
    f'  File "/srv/app/module_{n}.py", line {n * 7}, in handler_{n}\n    result = step_{n}(data)\n'
    for n in range(60)
) + "KeyError: 'user_id'"  # fmt: skip
CODE = "def add(a, b):\n    return a - b  # why is this wrong?\n"


def screenshot(width: int = 1280, height: int = 800, label: str = "Error 42") -> bytes:
    """A PNG like a screenshot: a window with a title bar and some text."""
    image = Image.new("RGB", (width, height), "#f0f0f0")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 40), fill="#3050a0")
    for row in range(12):
        draw.text((30, 80 + 40 * row), f"{label}: line {row} of the log", fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def user_content(request: dict) -> str | list:
    return request["messages"][-1]["content"]


def image_parts(message: dict) -> list[dict]:
    content = message["content"]
    return [p for p in content if p["type"] == "image_url"] if isinstance(content, list) else []


async def test_a_long_paste_with_empty_text_is_answered_with_its_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    assert len(TRACE) > 4000  # more than even Nitro users may type: Discord attached it
    said = await discord_api.user_says(
        "general", "alice", "", attachments=[FakeAttachment("message.txt", TRACE.encode())]
    )
    assert said["attachments"][0]["content_type"] == "text/plain; charset=utf-8"
    [answer] = await replies(discord_api, "general")
    [request] = openai_api.completions
    assert user_content(request) == f"File: `message.txt`\n```\n{TRACE}\n```"
    assert answer["content"].startswith("echo: File: `message.txt`")
    assert "-#" not in answer["content"]  # nothing skipped or shortened: no note


async def test_a_code_file_with_a_question_and_no_content_type(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    code = FakeAttachment("calc.py", CODE.encode(), guess_content_type=False)
    said = await discord_api.user_says("general", "bob", "Why is add wrong?", attachments=[code])
    assert "content_type" not in said["attachments"][0]
    await replies(discord_api, "general")
    assert user_content(openai_api.completions[0]) == (
        f"Why is add wrong?\n\nFile: `calc.py`\n```python\n{CODE}```"
    )


async def test_a_pdf_gives_its_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    pdf = FakeAttachment("invoice.pdf", make_pdf(["Invoice total: 42 EUR", "Due 2026-12-31"]))
    await discord_api.user_says("general", "alice", "When is it due?", attachments=[pdf])
    await replies(discord_api, "general")
    content = user_content(openai_api.completions[0])
    assert content.startswith("When is it due?\n\nFile: `invoice.pdf`\n```\n[page 1]\n")
    assert content.index("Invoice total: 42 EUR") < content.index("[page 2]\nDue 2026-12-31")


async def test_a_long_file_is_shortened_and_the_user_told(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(MAX_CONTEXT_TOKENS="2000", MAX_REPLY_TOKENS="500")
    openai_api.script(Reply("Nothing odd."))
    log_text = "".join(f"2026-11-30 12:00:{n % 60:02d} worker {n} done\n" for n in range(3000))
    log_file = FakeAttachment("worker.log", log_text.encode())
    await discord_api.user_says("general", "alice", "Any errors?", attachments=[log_file])
    [answer] = await replies(discord_api, "general")
    [request] = openai_api.completions
    assert "of this file are shown.]" in user_content(request)
    # Shortened by whole lines to fit the budget; only the file's note, none for the message.
    assert answer["content"] == (
        "Nothing odd.\n-# Read only the first 80 of 3,000 lines of `worker.log` (3%)."
    )
    conversations = bot.conversations
    assert prompt_tokens(request) <= conversations.settings.prompt_budget


@pytest.mark.parametrize("model", [DEFAULT_MODEL, "gpt-4.1"])
async def test_a_screenshot_goes_to_a_vision_model_as_a_data_url_within_budget(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, model: str
) -> None:
    assert model_accepts_images(model)
    bot = await start_bot(
        OPENAI_MODEL=model, VISION="auto", IMAGE_DETAIL="high", MAX_CONTEXT_TOKENS="8192"
    )
    shot = FakeAttachment("screenshot.png", screenshot(), width=1280, height=800)
    await discord_api.user_says("general", "alice", "What does it say?", attachments=[shot])
    [answer] = await replies(discord_api, "general")
    assert "-#" not in answer["content"]
    [request] = openai_api.chat_requests
    message = request.json["messages"][-1]
    text = "What does it say?\n\n[image: screenshot.png]"
    assert message["content"][0] == {"type": "text", "text": text}
    [part] = image_parts(message)
    url = part["image_url"]["url"]
    assert url.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
    assert part["image_url"]["detail"] == "high"
    # Downscaled for the model: short side 768, as the tile rule and the patch budget use.
    size = image_size(base64.b64decode(url.split(",", 1)[1]))
    assert size == (1228, 768)

    # The bot's count of the request, made when the turn was remembered...
    conversations = bot.conversations
    memory = conversations.channels[discord_api.channels["general"].id].memory
    user_turn = next(iter(memory))
    asked = ChannelMemory(memory.budget)
    asked.remember(user_turn)
    ours = conversations.prompts.prompt(asked).tokens
    # ... against the stand-in's, which bills the image by OpenAI's rule on its own.
    theirs = prompt_tokens(request.json)
    assert theirs <= conversations.settings.prompt_budget
    their_image = image_tokens(*size, "high", model)
    assert ours - user_turn.images[0].tokens == theirs - their_image  # the text, exactly
    assert ours == theirs
    if model == "gpt-4.1":  # a tile-rule model
        assert their_image == 85 + 170 * 6  # 1228 x 768 is 3 x 2 tiles of 512 px
    else:  # a patch-rule model: 39 x 24 patches of 32 px, x 1.62 (gpt-5-mini's figure)
        assert their_image == 1517


@pytest.mark.parametrize(("style", "stream"), [("openai", "false"), ("llama_cpp", "true")])
async def test_a_text_only_model_is_told_once_and_the_text_answered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, style: str, stream: str
) -> None:
    openai_api.text_only(style)
    await start_bot(VISION="on", STREAM_REPLIES=stream)
    first = FakeAttachment("a.png", screenshot(400, 300), width=400, height=300)
    await discord_api.user_says("general", "alice", "What is this?", attachments=[first])
    [answer] = await final_messages(discord_api, "general", 1)
    assert answer == f"echo: What is this?\n\n[image: a.png]\n{NO_VISION_NOTE}"
    refused = [r for r in openai_api.chat_requests if image_parts(r.json["messages"][-1])]
    assert refused and all(r.status in (400, 500) for r in refused)
    assert user_content(openai_api.completions[-1]) == "What is this?\n\n[image: a.png]"

    second = FakeAttachment("b.png", screenshot(400, 300), width=400, height=300)
    said = await discord_api.user_says("general", "bob", "And this one?", attachments=[second])
    answers = await final_messages(discord_api, "general", 2)
    assert answers[-1] == "echo: Zoe: And this one?"  # told once: no note again
    assert discord_api.downloaded(said["attachments"][0]) == []  # not fetched for nothing
    assert not any(image_parts(m) for m in openai_api.completions[-1]["messages"])


async def test_vision_off_skips_pictures_and_says_so_once(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(VISION="off")
    for n in range(2):
        shot = FakeAttachment(f"s{n}.png", screenshot(200, 100), width=200, height=100)
        await discord_api.user_says("general", "alice", f"look {n}", attachments=[shot])
        await replies(discord_api, "general", n + 1)
    first, second = (m["content"] for m in discord_api.bot_messages("general"))
    assert first == "echo: look 0\n-# Skipped `s0.png`: this model does not take images."
    assert second == "echo: look 1"
    assert discord_api.downloaded() == []


async def test_a_50_mb_video_is_skipped_told_and_never_downloaded(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    video = FakeAttachment("clip.mp4", b"", size=50 * MB, content_type="video/mp4")
    huge_log = FakeAttachment("huge.log", b"x", size=50 * MB)
    await discord_api.user_says("general", "alice", "thoughts?", attachments=[video, huge_log])
    [answer] = await replies(discord_api, "general")
    assert answer["content"] == (
        "echo: thoughts?\n"
        "-# Skipped `clip.mp4`: video is not read.\n"
        "-# Skipped `huge.log`: too large (50.0 MB; the limit is 10.0 MB)."
    )
    assert user_content(openai_api.completions[0]) == "thoughts?"
    assert discord_api.downloaded() == []


async def test_a_failed_download_is_a_note_never_a_lost_turn(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    discord_api.fail_downloads(status=404)
    notes = FakeAttachment("notes.txt", b"buy milk")
    await discord_api.user_says("general", "alice", "what's on my list?", attachments=[notes])
    [answer] = await replies(discord_api, "general")
    assert answer["content"] == (
        "echo: what's on my list?\n-# Skipped `notes.txt`: the download failed (HTTP 404)."
    )
    assert len(discord_api.downloaded()) == 1

    # A message of files that all fail gets the note as a notice, without a model call.
    discord_api.fail_downloads(status=500)
    await discord_api.user_says("general", "bob", "", attachments=[notes])
    posted = await replies(discord_api, "general", 2)
    assert posted[-1]["content"] == "-# Skipped `notes.txt`: the download failed (HTTP 500)."
    assert posted[-1]["flags"] & 4096  # silent, as every notice: never part of the history
    assert len(openai_api.completions) == 1


async def test_only_unreadable_files_get_a_note_instead_of_silence(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    archive = FakeAttachment("project.zip", b"PK\x03\x04", content_type="application/zip")
    await discord_api.user_says("general", "alice", "", attachments=[archive])
    [notice] = await replies(discord_api, "general")
    assert notice["content"] == "-# Skipped `project.zip`: archives are not opened."
    assert openai_api.completions == [] and discord_api.downloaded() == []


async def test_a_file_only_message_in_mention_mode_is_remembered_not_answered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")
    config_file = FakeAttachment("config.yaml", b"port: 8443\n")
    await discord_api.user_says("general", "alice", "", attachments=[config_file])
    await discord_api.user_says(
        "general", "alice", "", mention_bot=True, attachments=[FakeAttachment("b.txt", b"hello")]
    )
    [answer] = await replies(discord_api, "general")
    [request] = openai_api.completions  # the mention only
    assert [m["content"] for m in request["messages"][1:]] == [
        "File: `config.yaml`\n```yaml\nport: 8443\n```",
        f"@{bot.user.display_name}\n\nFile: `b.txt`\n```\nhello\n```",
    ]
    assert answer["content"].startswith("echo: @")

    interaction = await discord_api.user_runs_command("general", "alice", "memory")
    report = (await discord_api.wait_for_interaction_response(interaction))["content"]
    assert "3 messages (2 attachments, 0 images sent)" in report


async def test_after_a_restart_files_are_read_back_into_the_same_turns(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot(VISION="on", MAX_CONTEXT_TOKENS="16000")
    code = FakeAttachment("calc.py", CODE.encode())
    await discord_api.user_says("general", "alice", "Here is my code", attachments=[code])
    await replies(discord_api, "general")
    shots = []
    for n in range(IMAGE_TURNS + 1):
        shot = FakeAttachment(f"shot{n}.png", screenshot(300, 200, f"E{n}"), width=300, height=200)
        said = await discord_api.user_says("general", "bob", f"screen {n}", attachments=[shot])
        shots.append(said["attachments"][0])
        await replies(discord_api, "general", n + 2)
    before = openai_api.completions[-1]["messages"]
    # Live, older turns keep their images until a step trims the history (memory.py).
    assert [len(image_parts(m)) for m in before[1:]] == [0, 0, 1, 0, 1, 0, 1]
    assert all(len(discord_api.downloaded(s)) == 1 for s in shots)
    await first.close()

    await start_bot(VISION="on", MAX_CONTEXT_TOKENS="16000")
    await discord_api.user_says("general", "alice", "What does add return?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == IMAGE_TURNS + 3)
    after = openai_api.completions[-1]["messages"]
    # The same turns, images for the newest IMAGE_TURNS turns with them.
    assert after[1:3] == before[1:3] and after[4:-2] == before[4:]
    # The oldest image was not fetched again: it is only named in its turn.
    assert [len(discord_api.downloaded(s)) for s in shots] == [1, 2, 2]
    assert after[3]["content"] == "Zoe: screen 0\n\n[image: shot0.png]"
