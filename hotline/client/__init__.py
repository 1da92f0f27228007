"""hotline.client: the async Python client library (used by the CLI, the exercise engine and tests).

Quick start (docs/CLIENT.md has more)::

    store = FileProfileStore(Path("~/.config/hotline/profiles/delhi").expanduser())
    desk = await DeskClient.enroll("http://127.0.0.1:8000", invite_code, "laptop", store)
    sent = await desk.send(["islamabad"], "Are your forces on alert?", precedence=Precedence.FLASH,
                           intent=Intent.CLARIFICATION_REQUEST)
    for event in await desk.sync():
        ...
"""

from hotline.client.admin import AdminClient
from hotline.client.api import RelayAPI
from hotline.client.desk import (
    ClientEvent,
    Contact,
    DeskClient,
    GapAlarm,
    KeyChanged,
    MessageReceived,
    MessageRefused,
    ReceiptReceived,
    RelayAlarm,
    SentMessage,
    system_clock,
)
from hotline.client.errors import ClientError, KeyChangeError, ProfileError, RelayError, RelayUnreachableError
from hotline.client.state import FileProfileStore, MemoryProfileStore, ProfileState, ProfileStore

__all__ = [
    "AdminClient",
    "ClientError",
    "ClientEvent",
    "Contact",
    "DeskClient",
    "FileProfileStore",
    "GapAlarm",
    "KeyChangeError",
    "KeyChanged",
    "MemoryProfileStore",
    "MessageReceived",
    "MessageRefused",
    "ProfileError",
    "ProfileState",
    "ProfileStore",
    "ReceiptReceived",
    "RelayAPI",
    "RelayAlarm",
    "RelayError",
    "RelayUnreachableError",
    "SentMessage",
    "system_clock",
]
