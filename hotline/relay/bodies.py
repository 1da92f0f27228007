"""Request bodies of the relay API as strict pydantic models (unknown fields are refused).

Bodies are first parsed by :func:`hotline.protocol.encoding.load_json_object` (no duplicate keys, no
NaN), then validated here in pydantic's strict JSON mode. Signed objects (envelopes, receipts,
prekeys) stay plain JSON values: the protocol core parses those.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hotline.protocol.encoding import load_json_object
from hotline.protocol.errors import ProtocolError
from hotline.protocol.model import CHANNEL_RE, NAME_RE, RESERVED_MEMBERS
from hotline.relay.errors import RelayError, from_protocol, malformed
from hotline.relay.store import Role

Name = Annotated[str, Field(pattern=NAME_RE.pattern, max_length=32)]
ChannelName = Annotated[str, Field(pattern=CHANNEL_RE.pattern, max_length=64)]
B64 = Annotated[str, Field(max_length=8192)]
TtlS = Annotated[int, Field(ge=1)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MemberBody(Body):
    member: Name
    role: Role


class CreateChannelBody(Body):
    channel: ChannelName
    title: Annotated[str, Field(max_length=200)] = ""
    suite: Annotated[str, Field(max_length=64)] = "hotline-c1"
    members: Annotated[list[MemberBody], Field(min_length=1)]
    invite_ttl_s: TtlS | None = None
    policy: dict[str, Any] | None = None  # deadlines, schedules, triggers (docs/API.md, "Channel policy")


class AddMemberBody(Body):
    member: Name
    role: Role
    invite_ttl_s: TtlS | None = None


class CreateInviteBody(Body):
    member: Name
    ttl_s: TtlS | None = None


class EnrollBody(Body):
    code: Annotated[str, Field(max_length=64)]
    device: Name
    signing_key: B64
    prekeys: list[Any]


class ChallengeBody(Body):
    channel: ChannelName
    member: Name
    device: Name


class TokenBody(Body):
    channel: ChannelName
    member: Name
    device: Name
    challenge: B64
    signature: B64


class PrekeysBody(Body):
    prekeys: list[Any]


class ReceiptBody(Body):
    receipt: Any


class AckBody(Body):
    ids: list[Any]


B = TypeVar("B", bound=Body)


def parse_json(data: bytes, max_bytes: int) -> dict[str, Any]:
    """Strict JSON object parsing of a request body; protocol errors become relay errors."""
    if not data:
        raise malformed("the request needs a JSON body")
    try:
        return load_json_object(data, what="request body", max_bytes=max_bytes)
    except ProtocolError as exc:
        raise from_protocol(exc) from exc


def parse_body(model: type[B], data: bytes, max_bytes: int) -> B:
    """Parse and validate a body; the first validation problem becomes a ``malformed`` error."""
    parse_json(data, max_bytes)
    try:
        body = model.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    for member in _member_names(body):
        if member in RESERVED_MEMBERS:
            raise malformed(f"member name {member!r} is reserved")
    return body


def _member_names(body: Body) -> list[str]:
    if isinstance(body, CreateChannelBody):
        return [m.member for m in body.members]
    if isinstance(body, AddMemberBody | CreateInviteBody):
        return [body.member]
    return []


def validation_error(exc: ValidationError) -> RelayError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return malformed(f"{where}: {first.get('msg', 'invalid')}")


ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "Envelope",
    "description": "An envelope as it travels (docs/PROTOCOL.md): base64url header, body, keys, signature.",
    "type": "object",
    "required": ["header", "body", "keys", "sig"],
    "additionalProperties": False,
    "properties": {
        "header": {"type": "string"},
        "body": {"type": "string"},
        "keys": {"type": "array", "items": {"type": "string"}},
        "sig": {"type": "string"},
    },
}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def openapi_body(model: type[Body] | dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body that the route reads itself."""
    schema = dict(model) if isinstance(model, dict) else model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, defs)}},
        }
    }
