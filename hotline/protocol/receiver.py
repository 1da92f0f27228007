"""The receiver state machine: each message accepted once, in a stream whose gaps are never silent.

Theory of operation
-------------------
A sender device numbers the messages it sends to each recipient member 1, 2, 3, … (``header.seq``).
A receiving device keeps, for every sender device, the highest number it has accepted and the ranges
below it that it has not seen (*gaps*). For each arriving message, identified by (sender device,
sequence number, message id), exactly one of these happens:

* the message id was accepted before from that sender device → :class:`Duplicate`; nothing is
  accepted (ids are kept per sender, so a co-recipient who copies another sender's id cannot make
  the real message look like a duplicate);
* the number is the next one → :class:`Accepted`;
* the number is beyond the next one → :class:`GapDetected` for the numbers skipped, then
  :class:`Accepted`; the skipped numbers are remembered as missing;
* the number is one remembered as missing → :class:`Accepted` with ``filled_gap=True`` (a late or
  resent message heals the gap);
* any other number at or below the highest → :class:`Replay`; nothing is accepted.

Hence no (sender device, sequence number) and no (sender device, message id) is ever accepted twice,
whatever the interleaving of duplicates, reorderings and gaps, and every skipped number is reported once.

A device enrolled after its member's first device starts with ``strict_start=False``: the first number
it sees from a sender becomes its baseline, since earlier messages went to the member's older devices.
Everything that affects the state lives in this file; it does no I/O and keeps no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hotline.protocol.model import DeviceAddress


@dataclass(frozen=True)
class Accepted:
    sender: DeviceAddress
    seq: int
    message_id: str
    filled_gap: bool = False


@dataclass(frozen=True)
class GapDetected:
    sender: DeviceAddress
    first: int
    last: int

    def __str__(self) -> str:
        span = f"message {self.first}" if self.first == self.last else (f"messages {self.first}–{self.last}")
        return f"{span} from {self.sender} missing"


@dataclass(frozen=True)
class Duplicate:
    sender: DeviceAddress
    seq: int
    message_id: str


@dataclass(frozen=True)
class Replay:
    """A message id never seen, reusing a sequence number already used: refused."""

    sender: DeviceAddress
    seq: int
    message_id: str


Event = Accepted | GapDetected | Duplicate | Replay


@dataclass
class _Stream:
    high: int | None  # None: baseline not yet set (non-strict start)
    missing: list[tuple[int, int]] = field(default_factory=list)  # sorted, disjoint, inclusive
    ids: set[str] = field(default_factory=set)  # message ids accepted from this sender

    def take_missing(self, seq: int) -> bool:
        for i, (lo, hi) in enumerate(self.missing):
            if lo <= seq <= hi:
                parts = [(lo, seq - 1)] if lo < seq else []
                if seq < hi:
                    parts.append((seq + 1, hi))
                self.missing[i : i + 1] = parts
                return True
        return False


class ReceiverState:
    def __init__(self, *, strict_start: bool = True) -> None:
        self._strict_start = strict_start
        self._streams: dict[DeviceAddress, _Stream] = {}

    def receive(self, sender: DeviceAddress, seq: int, message_id: str) -> list[Event]:
        """Feed one message; the returned events say whether to hand it to the application."""
        if seq < 1:
            raise ValueError("sequence numbers start at 1")
        stream = self._streams.get(sender)
        if stream is None:
            stream = _Stream(high=0 if self._strict_start else None)
            self._streams[sender] = stream
        if message_id in stream.ids:
            return [Duplicate(sender, seq, message_id)]
        events: list[Event] = []
        filled = False
        if stream.high is None or seq == stream.high + 1:
            stream.high = seq
        elif seq > stream.high + 1:
            events.append(GapDetected(sender, stream.high + 1, seq - 1))
            stream.missing.append((stream.high + 1, seq - 1))
            stream.high = seq
        elif stream.take_missing(seq):
            filled = True
        else:
            return [Replay(sender, seq, message_id)]
        stream.ids.add(message_id)
        events.append(Accepted(sender, seq, message_id, filled_gap=filled))
        return events

    def missing(self, sender: DeviceAddress) -> list[tuple[int, int]]:
        """Ranges of sequence numbers from ``sender`` still missing (inclusive)."""
        stream = self._streams.get(sender)
        return list(stream.missing) if stream else []

    def all_missing(self) -> dict[DeviceAddress, list[tuple[int, int]]]:
        return {s: list(st.missing) for s, st in self._streams.items() if st.missing}

    def has_accepted(self, sender: DeviceAddress, message_id: str) -> bool:
        stream = self._streams.get(sender)
        return stream is not None and message_id in stream.ids

    def to_json(self) -> dict[str, Any]:
        """Plain data for a client to persist between runs."""
        return {
            "strict_start": self._strict_start,
            "streams": [
                {
                    "member": s.member,
                    "device": s.device,
                    "high": st.high,
                    "missing": [list(r) for r in st.missing],
                    "ids": sorted(st.ids),
                }
                for s, st in sorted(self._streams.items())
            ],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ReceiverState:
        state = cls(strict_start=bool(obj["strict_start"]))
        for item in obj["streams"]:
            stream = _Stream(
                high=item["high"], missing=[(lo, hi) for lo, hi in item["missing"]], ids=set(item["ids"])
            )
            state._streams[DeviceAddress(item["member"], item["device"])] = stream
        return state
