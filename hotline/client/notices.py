"""The client event for a relay notice (escalation, crisis change, check-in due, policy, withdrawal).

Kept apart from :mod:`hotline.client.desk` so that both it and :mod:`hotline.client.watch` can name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NoticeReceived:
    """A notice the relay signed (checked with its pinned key); a crisis or withdrawal notice also
    carries the act of the device that made the change (checked with that device's pinned key).

    ``kind``: ``escalation`` | ``crisis`` | ``policy`` | ``checkin-due`` | ``withdrawn``; ``fields``: the
    notice's own fields (docs/PROTOCOL.md §15); ``by``: the ``member/device`` whose act it records.
    """

    kind: str
    channel: str
    at_ms: int
    fields: dict[str, Any] = field(default_factory=dict)
    by: str | None = None

    @property
    def text(self) -> str:
        """One line for people."""
        f = self.fields
        if self.kind == "escalation":
            what = {
                "delivery_overdue": "not delivered to",
                "ack_overdue": "not acknowledged by",
                "link_test_missed": "link test not answered by",
                "checkin_missed": "check-in not answered by",
            }.get(str(f.get("reason")), str(f.get("reason")))
            subject = f.get("message_id") or f.get("checkin") or ""
            prec = f" {f['precedence']}" if f.get("precedence") else ""
            return (
                f"ESCALATION #{f.get('attempt')}:{prec} {subject} {what} {f.get('desk')} ({f.get('state')})"
            )
        if self.kind == "crisis":
            state = "DECLARED" if f.get("on") else "STOOD DOWN"
            who = self.by or f.get("by")
            trigger = "" if f.get("trigger") == "act" else f" automatically ({f.get('trigger')})"
            reason = f": {f['reason']}" if f.get("reason") else ""
            return f"CRISIS MODE {state} by {who}{trigger}{reason}"
        if self.kind == "checkin-due":
            desks = ", ".join(f.get("desks", []))
            return f"CHECK-IN {f.get('checkin')} due; answer by {f.get('answer_by_ms')} ({desks})"
        if self.kind == "withdrawn":
            return f"message {f.get('message_id')} withdrawn by {self.by or f.get('by')}"
        if self.kind == "policy":
            return f"channel policy changed (version {f.get('version')}) by {f.get('by')}"
        return f"{self.kind}: {f}"
