"""Self-test of the Discord stand-in: buttons on an ephemeral message work as on Discord
(the message is in no history and no gateway event shows its edits)."""

# The stand-in fixtures are test_discord_standin.py's, imported by name.
# ruff: noqa: F811

from __future__ import annotations

import discord

from tests.standins.discord import DiscordStandIn
from tests.standins.test_discord_standin import (  # noqa: F401 (fixtures)
    Buttons,
    ProbeClient,
    client,
    make_client,
    make_standin,
    standin,
)


class Ask(discord.ui.View):
    """A button that answers privately with the `Buttons` under the answer."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.inner = Buttons()

    @discord.ui.button(label="Ask", custom_id="ask")
    async def ask(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await interaction.response.send_message("sure?", view=self.inner, ephemeral=True)


async def test_an_ephemeral_messages_buttons_can_be_pressed_and_edit_it_privately(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    view = Ask()
    sent = await client.get_channel(standin.general.id).send("go", view=view)
    asked = await standin.press(sent.id, "Ask", "alice")
    private = await standin.wait_for_interaction_response(asked)
    assert private["ephemeral"] and private["content"] == "sure?"
    edits_before = len(client.edited)
    later = await standin.press(private["message_id"], "Later", "alice")
    await standin.wait_for(
        lambda: any(
            r["content"] == "edited after a deferral" for r in standin.interaction_responses(later)
        )
    )
    edit = await standin.press(private["message_id"], "Edit", "alice")
    answer = await standin.wait_for_interaction_response(edit)
    assert (answer["type"], answer["content"], answer["ephemeral"]) == (
        7, "edited by the press", True,
    )  # fmt: skip
    assert [m["content"] for m in standin.messages("general")] == ["go"]  # in no history
    assert len(client.edited) == edits_before  # no MESSAGE_UPDATE for an ephemeral one
