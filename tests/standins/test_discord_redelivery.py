"""The Discord stand-in delivers a message again on request (`deliver_again`), as Discord
may deliver one gateway event twice: to every live session of its shard, the same
payload."""

from __future__ import annotations

from tests.helpers import until
from tests.standins.test_discord_sharding import connect, standin  # noqa: F401 - fixtures


async def test_a_message_delivered_again_reaches_every_session_of_its_shard_twice(
    standin,  # noqa: F811 - the fixture
    connect,  # noqa: F811 - the fixture
) -> None:
    first, second = await connect([0, 1]), await connect([0, 1])
    await standin.wait_until_ready(count=2)
    sent = await standin.user_says("general", "alice", "twice")
    assert await standin.deliver_again(sent)
    await until(lambda: len(first.message_ids()) == len(second.message_ids()) == 2)
    assert first.message_ids() == second.message_ids() == [int(sent["id"])] * 2
    assert first.names("MESSAGE_CREATE")[0] == first.names("MESSAGE_CREATE")[1]
