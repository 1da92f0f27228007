"""Byte-exact encodings used on the wire: strict unpadded base64url and strict JSON.

Everything signed in hotline is an exact byte string that travels base64url-encoded, so nothing is ever
re-serialized before verification. This module makes the decoders strict (one accepted encoding per byte
string, no duplicate JSON keys, no NaN) so that two parties can never disagree about what was signed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from hotline.protocol.errors import MalformedError, TooLargeError

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def b64e(data: bytes) -> str:
    """Encode bytes as unpadded base64url (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, *, field: str, max_bytes: int | None = None) -> bytes:
    """Decode strict unpadded base64url; reject padding, other alphabets and non-canonical trailing bits."""
    if not isinstance(text, str):
        raise MalformedError(f"{field}: expected a base64url string")
    if max_bytes is not None and len(text) > (max_bytes * 4 + 2) // 3:
        raise TooLargeError(f"{field}: longer than {max_bytes} bytes")
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedError(f"{field}: not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex already guards
        raise MalformedError(f"{field}: not unpadded base64url") from exc
    if b64e(data) != text:
        raise MalformedError(f"{field}: non-canonical base64url")
    return data


def dump_json(obj: Any) -> bytes:
    """Serialize as compact UTF-8 JSON with sorted keys (how this implementation produces signed bytes)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from surrogateescape-decoded input
        raise MalformedError("a string is not valid Unicode (lone surrogate)") from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


def load_json_object(data: bytes, *, what: str, max_bytes: int) -> dict[str, Any]:
    """Parse bytes as one strict JSON object, after checking the size and UTF-8 encoding."""
    if len(data) > max_bytes:
        raise TooLargeError(f"{what}: {len(data)} bytes is over the limit of {max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"{what}: not valid UTF-8") from exc
    try:
        obj = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except MalformedError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedError(f"{what}: not valid JSON") from exc
    if not isinstance(obj, dict):
        raise MalformedError(f"{what}: expected a JSON object")
    _reject_lone_surrogates(obj, what=what)
    return obj


def _reject_lone_surrogates(obj: Any, *, what: str) -> None:
    """Refuse strings holding an escaped lone surrogate ("\\ud800"): not Unicode, never encodable as UTF-8."""
    pending = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and _SURROGATE_RE.search(item):
            raise MalformedError(f"{what}: a string is not valid Unicode (lone surrogate)")


def frame(*parts: bytes) -> bytes:
    """Length-prefix each part (4-byte big-endian) so concatenations are unambiguous."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)
