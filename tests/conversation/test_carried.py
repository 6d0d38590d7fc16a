"""What a remembered message carries besides its text survives its edits (incoming.py
`Carried`), whether or not the bot read it live."""

from __future__ import annotations

from conversation.incoming import Carried, Prepared
from discord_side.downloads import AttachmentContent
from memory import ChannelMemory, Turn
from text.quoting import quote, reply_header, with_quotes


def _turn(content: str, message_id: int) -> Turn:
    return Turn("user", content, "Alice", 10, message_ids=(message_id,))


def test_a_kept_message_keeps_its_files_text(o200k) -> None:
    carried = Carried()
    files = AttachmentContent(text="build.log:\nerror", names=("build.log",))
    carried.keep(7, Prepared(files=files))
    memory = ChannelMemory(10_000)
    text, _, names = carried.edited(7, "new words", memory)
    assert text == "new words\n\nbuild.log:\nerror" and names == ("build.log",)


def test_a_message_read_back_keeps_its_quotes(o200k) -> None:
    block = quote(reply_header("Bob"), "deploy at 5pm", max_tokens=100, counter=o200k)
    memory = ChannelMemory(10_000)
    memory.remember(_turn(with_quotes([block], "old words"), 9))
    text, _, _ = Carried().edited(9, "new words", memory)
    assert text == with_quotes([block], "new words")
    assert Carried().edited(3, "unknown", memory) == ("unknown", (), ())


def test_only_the_newest_messages_are_kept() -> None:
    carried = Carried()
    for message_id in range(Carried.LIMIT + 5):
        carried.keep(message_id, Prepared(files=AttachmentContent(text="f")))
    memory = ChannelMemory(10_000)
    assert carried.edited(0, "x", memory) == ("x", (), ())
    assert carried.edited(Carried.LIMIT + 4, "x", memory)[0] == "x\n\nf"
