"""Two desks exchange a FLASH message through a relay with hotline.client — a runnable example.

Usage: python docs/examples/two_desks.py RELAY_URL ADMIN_TOKEN_FILE
(start a relay first: ``hotline serve --data-dir ./relay-data``). Profiles go to a temporary directory.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from hotline.client import AdminClient, DeskClient, FileProfileStore, MessageReceived, ReceiptReceived
from hotline.client.admin import read_admin_token
from hotline.protocol import Intent, Precedence


async def main(relay: str, token_file: Path) -> None:
    # 1. An administrator creates the channel; the relay returns one single-use invite per member.
    async with AdminClient(relay, read_admin_token(token_file)) as admin:
        created = await admin.create_channel(
            f"example-{Path(tempfile.mkdtemp()).name[-6:].lower()}",
            {"delhi": "principal", "islamabad": "principal"},
        )
    invites = {i["member"]: i["code"] for i in created["invites"]}

    with tempfile.TemporaryDirectory() as home:
        # 2. Each desk generates its keys locally and redeems its invite with the public halves.
        delhi = await DeskClient.enroll(relay, invites["delhi"], "laptop", FileProfileStore(Path(home, "d")))
        islamabad = await DeskClient.enroll(
            relay, invites["islamabad"], "desk", FileProfileStore(Path(home, "i"))
        )
        async with delhi, islamabad:
            # 3. Compare safety numbers out of band (here: directly) and mark each other verified.
            await delhi.refresh_directory()
            assert delhi.verify_contact("islamabad", islamabad.safety_number_with("delhi"))

            # 4. Send: sealed for every islamabad device; the relay answers with a signed receipt.
            sent = await delhi.send(
                ["islamabad"],
                "Please clarify the purpose of the troop movement reported near the border.",
                precedence=Precedence.FLASH,
                intent=Intent.CLARIFICATION_REQUEST,
            )
            print(f"sent {sent.message_id}, relay log index {sent.log_index}")

            # 5. Receive (pull; `listen()` streams over a WebSocket instead). Delivered receipts go back.
            for event in await islamabad.sync():
                if isinstance(event, MessageReceived):
                    print(f"islamabad got {event.precedence.value} {event.intent.value}: {event.text}")
                    await islamabad.acknowledge(
                        event.message_id, reply="Routine rotation; no offensive intent."
                    )

            # 6. The sender sees each step of the ladder as signed receipts arrive.
            for event in await delhi.sync():
                if isinstance(event, ReceiptReceived):
                    print(f"{event.kind.value} by {event.issuer}")
                elif isinstance(event, MessageReceived):
                    print(f"reply: {event.text}")
            print(delhi.ladder(sent.message_id)["recipients"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
