"""The inner content of an envelope: what only the recipients can read.

It repeats the channel, message id, sender and recipients of the header, so a decrypted message can
never be re-sent under another header. Structured *templates* carry pre-agreed formats, such as the
2005 India–Pakistan pre-notification of ballistic-missile tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hotline.protocol.encoding import dump_json, load_json_object
from hotline.protocol.errors import MalformedError, UnsupportedVersionError
from hotline.protocol.model import (
    DEFAULT_LIMITS,
    LANG_RE,
    PROTOCOL_VERSION,
    DeviceAddress,
    Intent,
    Limits,
    is_protocol_version,
    require_channel,
    require_enum,
    require_int,
    require_object,
    require_str,
    require_uuid,
)
from hotline.protocol.statements import TreeHead

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Content:
    channel: str
    message_id: str
    sender: DeviceAddress
    recipients: tuple[DeviceAddress, ...]
    intent: Intent
    text: str
    lang: str = "en"
    in_reply_to: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return dump_json(
            {
                "v": PROTOCOL_VERSION,
                "channel": self.channel,
                "id": self.message_id,
                "sender": self.sender.to_json(),
                "recipients": [r.to_json() for r in self.recipients],
                "intent": self.intent.value,
                "text": self.text,
                "lang": self.lang,
                "in_reply_to": self.in_reply_to,
                "fields": self.fields,
            }
        )

    @classmethod
    def parse(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Content:
        obj = load_json_object(data, what="content", max_bytes=limits.max_body_plaintext_bytes)
        f = require_object(
            obj,
            field="content",
            keys={
                "v",
                "channel",
                "id",
                "sender",
                "recipients",
                "intent",
                "text",
                "lang",
                "in_reply_to",
                "fields",
            },
        )
        if not is_protocol_version(f["v"]):
            raise UnsupportedVersionError(f"content version {f['v']!r} is not supported")
        if not isinstance(f["recipients"], list) or len(f["recipients"]) > limits.max_recipients:
            raise MalformedError("content.recipients: expected a list within the recipient limit")
        lang = require_str(f["lang"], field="content.lang", max_len=35)
        if not LANG_RE.fullmatch(lang):
            raise MalformedError("content.lang: not a language tag")
        in_reply_to = f["in_reply_to"]
        if in_reply_to is not None:
            in_reply_to = require_uuid(in_reply_to, field="content.in_reply_to")
        if not isinstance(f["fields"], dict):
            raise MalformedError("content.fields: expected an object")
        intent = require_enum(f["intent"], Intent, field="content.intent")
        content = cls(
            channel=require_channel(f["channel"], field="content.channel"),
            message_id=require_uuid(f["id"], field="content.id"),
            sender=DeviceAddress.from_json(f["sender"], field="content.sender"),
            recipients=tuple(
                DeviceAddress.from_json(r, field=f"content.recipients[{i}]")
                for i, r in enumerate(f["recipients"])
            ),
            intent=intent,
            text=require_str(f["text"], field="content.text", max_len=limits.max_text_chars),
            lang=lang,
            in_reply_to=in_reply_to,
            fields=f["fields"],
        )
        validate_template(content.intent, content.fields)
        return content


def word_count(text: str) -> int:
    return len(text.split())


# --- templates ----------------------------------------------------------------------------------


# RFC 3339 date-time only (upper-case T, seconds, Z or ±hh:mm): ISO 8601 allows many more forms, and two
# implementations must agree exactly on which texts are valid.
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def _iso_ms(value: object, *, field: str) -> int:
    text = require_str(value, field=field, max_len=40)
    if not _RFC3339_RE.fullmatch(text):
        raise MalformedError(f"{field}: not an RFC 3339 date-time such as 2026-01-05T06:00:00Z")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedError(f"{field}: not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise MalformedError(f"{field}: needs a time zone (e.g. 'Z')")
    return int(parsed.timestamp() * 1000)


def _missile_test(fields: dict[str, Any]) -> None:
    f = require_object(
        fields,
        field="fields",
        keys={"template", "launch_window_start", "launch_window_end", "launch_area", "impact_area"},
        optional={"missile_type", "notice"},
    )
    start = _iso_ms(f["launch_window_start"], field="fields.launch_window_start")
    end = _iso_ms(f["launch_window_end"], field="fields.launch_window_end")
    if end <= start:
        raise MalformedError("fields: the launch window must end after it starts")
    if end - start > 5 * DAY_MS:
        raise MalformedError("fields: a launch window may last at most 5 days")
    for key in ("launch_area", "impact_area", "missile_type", "notice"):
        if key in f:
            require_str(f[key], field=f"fields.{key}", max_len=512)


def _installations_list(fields: dict[str, Any]) -> None:
    f = require_object(fields, field="fields", keys={"template", "year", "entries"})
    require_int(f["year"], field="fields.year")
    if not isinstance(f["entries"], list) or len(f["entries"]) > 1000:
        raise MalformedError("fields.entries: expected a list of at most 1000 entries")
    for i, entry in enumerate(f["entries"]):
        require_str(entry, field=f"fields.entries[{i}]", max_len=512)


def _tree_head(fields: dict[str, Any]) -> None:
    f = require_object(fields, field="fields", keys={"template", "tree_head"})
    TreeHead.from_json(f["tree_head"])  # its signature is the receiving desk's to check (relay key)


TEMPLATES: dict[str, tuple[Intent, Callable[[dict[str, Any]], None]]] = {
    # 2005 India–Pakistan agreement: pre-notify ballistic-missile tests, window of at most 5 days.
    "missile_test": (Intent.PRE_NOTIFICATION, _missile_test),
    # 1988/1992 agreement: lists of nuclear installations exchanged every 1 January.
    "nuclear_installations": (Intent.PRE_NOTIFICATION, _installations_list),
    # The newest relay tree head the sender verified, so desks catch a relay showing them two
    # histories (PROTOCOL.md §12.3); link tests are its natural carrier.
    "tree_head": (Intent.LINK_TEST, _tree_head),
}


def validate_template(intent: Intent, fields: dict[str, Any]) -> None:
    """Check structured fields: either empty, or a known template valid for the intent."""
    if not fields:
        return
    name = fields.get("template")
    if not isinstance(name, str) or name not in TEMPLATES:
        raise MalformedError(f"fields.template: unknown template {name!r}")
    expected_intent, check = TEMPLATES[name]
    if intent is not expected_intent:
        raise MalformedError(f"fields: template {name!r} needs intent {expected_intent.value!r}")
    check(fields)


def missile_test_notice_ok(fields: dict[str, Any], created_at_ms: int) -> bool:
    """True if the notice was given at least 3 days before the launch window opens (2005 agreement)."""
    start = _iso_ms(fields["launch_window_start"], field="fields.launch_window_start")
    return start - created_at_ms >= 3 * DAY_MS
