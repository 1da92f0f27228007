"""A desk's watch duties: link tests, crisis acts, check-ins, escalations, withdrawals, the ladder view.

``desk.watch`` (a :class:`Watch`) is the client side of docs/adr/0007. It

* sends link tests (:meth:`Watch.send_link_test`, :meth:`Watch.run_link_tests` on the channel's schedule)
  — sealed messages with intent ``link_test`` posted to ``POST .../link-tests``; the other desk's device
  answers by itself with its signed ``delivered`` receipt, so a test proves the whole path works;
* signs and posts acts: crisis declaration and stand-down, check-in answers, withdrawals;
* checks every relay notice (escalation, crisis change, check-in due, policy, withdrawal) against the
  relay key pinned at enrollment, and any act inside one against the issuer's pinned key, and keeps the
  crisis state, recent escalations and due check-ins in the profile (``state.extra["hotline"]``) so
  every client can show the crisis banner;
* refuses to seal a FLASH or IMMEDIATE text over the channel's word cap (the relay cannot see content),
  and flags a received one;
* resends rejected messages (:func:`hotline.client.ladder.resend_rejected`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hotline.client.errors import ClientError, RelayUnreachableError
from hotline.client.ladder import Ladder, resend_rejected
from hotline.client.notices import NoticeReceived
from hotline.client.state import ProfileState
from hotline.protocol import Intent, Precedence, SignedPrekey, seal_envelope
from hotline.protocol.deadlines import DEFAULT_POLICY, Mode, Policy, link_test_due, word_cap_excess
from hotline.protocol.encoding import b64d
from hotline.protocol.errors import ProtocolError
from hotline.protocol.ids import uuid7
from hotline.protocol.notices import Act, ActKind, Notice, NoticeKind, sign_act
from hotline.protocol.receipts import ReceiptKind

if TYPE_CHECKING:
    from hotline.client.desk import ClientEvent, DeskClient

log = logging.getLogger(__name__)

LINK_TEST_PRECEDENCE = Precedence.IMMEDIATE
KEEP_LINK_TESTS = 20  # sent and received link tests kept in the profile (the relay keeps them all)
KEEP_ESCALATIONS = 100
KEEP_CHECKINS = 50
LINK_POLL_S = 10.0


def hotline_state(st: ProfileState) -> dict[str, Any]:
    """This module's part of the profile state."""
    hot: dict[str, Any] = st.extra.setdefault("hotline", {})
    return hot


def cached_policy(st: ProfileState) -> Policy:
    raw = hotline_state(st).get("policy")
    if raw is None:
        return DEFAULT_POLICY
    try:
        return Policy.from_json(raw["policy"])
    except (ProtocolError, KeyError, TypeError):
        return DEFAULT_POLICY


def crisis_of(st: ProfileState) -> dict[str, Any]:
    crisis: dict[str, Any] = hotline_state(st).get("crisis") or {"on": False, "epoch": 0}
    return crisis


def banner(st: ProfileState) -> str | None:
    """The crisis banner every client shows while the channel is in crisis mode, else None."""
    crisis = crisis_of(st)
    if not crisis.get("on"):
        return None
    since = crisis.get("since_ms")
    when = datetime.fromtimestamp(since / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ") if since else "?"
    by = crisis.get("by") or "?"
    how = "" if crisis.get("trigger") in (None, "act") else f" automatically ({crisis['trigger']})"
    reason = f" — {crisis['reason']}" if crisis.get("reason") else ""
    return f"CRISIS MODE since {when}, declared by {by}{how}{reason}"


def flag_over_cap(
    st: ProfileState, precedence: Precedence, text: str, message_id: str, sender: str, now: int
) -> None:
    """Record an alarm for a received message over the channel's word cap (it is still delivered)."""
    excess = word_cap_excess(cached_policy(st), precedence, text)
    if excess is not None:
        st.alarms.append(
            {
                "kind": "over_word_cap",
                "message_id": message_id,
                "sender": sender,
                "words": excess[0],
                "cap": excess[1],
                "at_ms": now,
            }
        )


def sent_extras(st: ProfileState) -> dict[str, Any]:
    """What the sender records with each sent message: the mode its deadlines were set in (as known)."""
    return {"mode": Mode.CRISIS.value if crisis_of(st).get("on") else Mode.NORMAL.value}


class Watch:
    def __init__(self, desk: DeskClient) -> None:
        self._desk = desk

    # --- relay views ------------------------------------------------------------------------------

    async def policy(self, *, refresh: bool = True) -> dict[str, Any]:
        """The channel's policy and crisis state (``GET .../policy``); cached in the profile."""
        desk = self._desk
        if not refresh:
            cached = hotline_state(desk.state).get("policy")
            if cached is not None:
                return dict(cached)
        body: dict[str, Any] = await desk._call("GET", "/policy")
        with desk._edit() as st:
            hot = hotline_state(st)
            hot["policy"] = body
            self._adopt_crisis(hot, body["crisis"])
        return body

    @staticmethod
    def _adopt_crisis(hot: dict[str, Any], state: Mapping[str, Any], reason: str | None = None) -> None:
        current = hot.get("crisis") or {"epoch": -1}
        if int(state["epoch"]) >= int(current.get("epoch", -1)):
            merged = dict(state)
            if reason is not None:
                merged["reason"] = reason
            elif int(state["epoch"]) == int(current.get("epoch", -1)) and "reason" in current:
                merged["reason"] = current["reason"]
            hot["crisis"] = merged

    async def crisis(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._desk._call("GET", "/crisis")
        with self._desk._edit() as st:
            history = body.get("history") or []
            reason = history[-1]["reason"] if history else None
            self._adopt_crisis(hotline_state(st), body["crisis"], reason)
        return body

    async def link(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._desk._call("GET", "/link")
        return body

    async def checkins(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._desk._call("GET", "/checkins")
        return body

    async def escalations(self, after: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = await self._desk._call("GET", "/escalations", params={"after": after})
        return body

    async def relay_ladder(self, message_id: str) -> Ladder:
        return Ladder.from_relay(await self._desk._call("GET", f"/messages/{message_id}/ladder"))

    def ladder(self, message_id: str) -> Ladder:
        """This device's own view of a message it sent (from the signed receipts it received)."""
        st = self._desk.state
        sent = st.sent.get(message_id)
        if sent is None:
            raise ClientError(f"no sent message {message_id}", code="not_found")
        return Ladder.from_sent(
            message_id, sent, st.sent, now_ms=self._desk.clock(), policy=cached_policy(st)
        )

    # --- acts -------------------------------------------------------------------------------------

    def _act(self, kind: ActKind, **fields: Any) -> Act:
        desk = self._desk
        now = desk.clock()
        return sign_act(
            desk.keys.signing,
            desk.address,
            kind,
            act_id=uuid7(now, desk.rng),
            channel=desk.state.channel,
            at_ms=now,
            **fields,
        )

    async def declare_crisis(self, reason: str) -> dict[str, Any]:
        """Declare crisis mode with a signed act (principals and controllers)."""
        return await self._crisis_act(True, reason)

    async def stand_down(self, reason: str) -> dict[str, Any]:
        return await self._crisis_act(False, reason)

    async def _crisis_act(self, declare: bool, reason: str) -> dict[str, Any]:
        current = (await self.crisis())["crisis"]
        kind = ActKind.CRISIS_DECLARE if declare else ActKind.CRISIS_STAND_DOWN
        act = self._act(kind, epoch=int(current["epoch"]), reason=reason)
        body: dict[str, Any] = await self._desk._call("POST", "/crisis", json_body={"act": act.to_json()})
        with self._desk._edit() as st:
            self._adopt_crisis(hotline_state(st), body["crisis"], reason)
        return body

    async def withdraw(self, message_id: str, reason: str = "") -> dict[str, Any]:
        """Withdraw a message this member sent: its escalations stop (a signed act)."""
        act = self._act(ActKind.WITHDRAW, message_id=message_id, reason=reason)
        body: dict[str, Any] = await self._desk._call(
            "POST", f"/messages/{message_id}/withdraw", json_body={"act": act.to_json()}
        )
        with self._desk._edit() as st:
            if message_id in st.sent:
                st.sent[message_id]["withdrawn_at_ms"] = body.get("withdrawn_at_ms")
        return body

    async def answer_checkin(self, checkin: str | None = None, text: str = "") -> list[dict[str, Any]]:
        """Answer one check-in, or every one this desk still owes; returns the relay's answers."""
        desk = self._desk
        member = desk.state.member
        if checkin is None:
            view = await self.checkins()
            owed = [
                c["checkin"]
                for c in view["checkins"]
                if any(d["desk"] == member and d["state"] != "answered" for d in c["desks"])
            ]
        else:
            owed = [checkin]
        out = []
        for name in owed:
            act = self._act(ActKind.CHECKIN_ANSWER, checkin=name, text=text)
            out.append(await desk._call("POST", "/checkins/answer", json_body={"act": act.to_json()}))
            with desk._edit() as st:
                hotline_state(st).setdefault("checkins", {}).pop(name, None)
        return out

    # --- sending link tests and resends -----------------------------------------------------------

    async def send_special(
        self,
        prekeys: Sequence[SignedPrekey],
        text: str,
        *,
        precedence: Precedence,
        intent: Intent | str,
        path: str,
        in_reply_to: str | None = None,
        exercise: bool = False,
        seq: Mapping[str, int] | None = None,
        note: Mapping[str, Any] | None = None,
        before_post: Callable[[ProfileState, str], None] | None = None,
    ) -> str:
        """Seal ``text`` to exactly ``prekeys`` and post it to ``path`` through the outbox.

        ``seq`` reuses given sequence numbers (a resend) instead of taking the next ones.
        """
        desk = self._desk
        now = desk.clock()
        members = sorted({p.owner.member for p in prekeys})
        with desk._edit() as st:
            numbers = dict(seq) if seq is not None else {m: st.next_seq.get(m, 1) for m in members}
            envelope = seal_envelope(
                desk.keys,
                channel=st.channel,
                seq=numbers,
                recipients=list(prekeys),
                precedence=precedence,
                intent=Intent(intent),
                text=text,
                now_ms=now,
                rng=desk.rng,
                in_reply_to=in_reply_to,
                exercise=exercise,
            )
            if seq is None:
                for m in members:
                    st.next_seq[m] = numbers[m] + 1
            message_id = envelope.header.message_id
            st.outbox[message_id] = {
                "envelope": envelope.to_json(),
                "to": members,
                "text": text,
                "intent": Intent(intent).value,
                "in_reply_to": in_reply_to,
                "path": path,
            }
            if before_post is not None:
                before_post(st, message_id)
        try:
            await desk._post_envelope(message_id)
        except ClientError as exc:
            if getattr(exc, "status", 500) < 500:
                with desk._edit() as st:
                    st.outbox.pop(message_id, None)
                    if seq is None:
                        for m in members:
                            if st.next_seq.get(m) == numbers[m] + 1:
                                st.next_seq[m] = numbers[m]
            raise
        if note:
            with desk._edit() as st:
                st.sent[message_id].update(note)
        return message_id

    async def send_link_test(self, to: str) -> str:
        """Send a link test to every device of ``to``; returns its message id."""
        desk = self._desk
        if desk._directory is None:
            await desk.refresh_directory()
        me = desk.state.member
        if to == me:
            raise ClientError("a link test goes to another desk", code="malformed")
        prekeys = [p for p in desk._recipient_prekeys([to], desk.clock()) if p.owner.member == to]
        if not prekeys:
            raise ClientError(f"{to} has no device to test", code="not_found")
        stamp = datetime.fromtimestamp(desk.clock() / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        text = f"LINK TEST {me} to {to} {stamp}"
        message_id = await self.send_special(
            prekeys, text, precedence=LINK_TEST_PRECEDENCE, intent=Intent.LINK_TEST, path="/link-tests"
        )
        self._prune_link_tests()
        return message_id

    def _prune_link_tests(self) -> None:
        with self._desk._edit() as st:
            for book in (st.sent, st.received):
                tests = [m for m, entry in book.items() if entry.get("intent") == Intent.LINK_TEST.value]
                for message_id in tests[:-KEEP_LINK_TESTS]:
                    del book[message_id]

    async def link_tests_due(self) -> list[str]:
        """The desks this desk should test now: by the relay's record of its last test to each
        (whichever device of this desk sent it) and the interval of the current mode."""
        view = await self.link()
        me = self._desk.state.member
        if me not in view["testing_desks"]:
            return []
        last = {x["to"]: x["last_sent_ms"] for x in view["directions"] if x["from"] == me}
        now = int(view.get("now_ms", self._desk.clock()))
        return [
            other
            for other in view["testing_desks"]
            if other != me and link_test_due(last.get(other), int(view["interval_s"]), now)
        ]

    async def run_link_tests(
        self,
        stop: asyncio.Event,
        *,
        poll_s: float = LINK_POLL_S,
        on_sent: Callable[[str, str], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Send each due link test, then look again every ``poll_s`` seconds, until ``stop`` is set."""
        while not stop.is_set():
            try:
                for other in await self.link_tests_due():
                    message_id = await self.send_link_test(other)
                    if on_sent is not None:
                        on_sent(other, message_id)
            except (ClientError, ProtocolError) as exc:
                if on_error is not None:
                    on_error(exc)
                else:
                    log.warning("link test not sent: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)

    # --- word caps ----------------------------------------------------------------------------------

    async def check_word_cap(self, precedence: Precedence, text: str) -> None:
        """Refuse a text over the channel's cap for ``precedence`` before it is sealed."""
        # Unreachable: the cached (or default) caps still apply; the message waits in the outbox.
        with contextlib.suppress(RelayUnreachableError):
            await self.policy(refresh=False)
        excess = word_cap_excess(cached_policy(self._desk.state), precedence, text)
        if excess is not None:
            words, cap = excess
            raise ClientError(
                f"a {precedence.value} message may have at most {cap} words; this one has {words}. "
                "Shorten it or send it at a lower precedence.",
                code="too_long",
            )

    # --- inbox items --------------------------------------------------------------------------------

    async def on_notice(self, item: Mapping[str, Any]) -> list[ClientEvent]:
        """Check a relay notice (and any act it carries) and keep what it says in the profile."""
        from hotline.client.desk import RelayAlarm

        desk = self._desk
        try:
            notice = Notice.from_json(item["notice"])
            notice.verify(b64d(desk.state.relay_public_key, field="relay_public_key"))
            act = notice.act
        except (ProtocolError, KeyError) as exc:
            return [RelayAlarm(f"a notice in item {item.get('id')} does not check out: {exc}", resend=True)]
        by = None
        if act is not None:
            key = desk._signing_key_of(act.issuer)
            if key is None:
                await desk.refresh_directory()
                key = desk._signing_key_of(act.issuer)
            try:
                if key is None:
                    raise ProtocolError(f"{act.issuer} is not a known device")
                act.verify(key)
            except ProtocolError:
                return [
                    RelayAlarm(f"the relay forwarded a {act.kind.value} act that {act.issuer} did not sign")
                ]
            by = str(act.issuer)
        fields = {k: v for k, v in notice.fields.items() if k != "act"}
        with desk._edit() as st:
            hot = hotline_state(st)
            if notice.kind is NoticeKind.CRISIS:
                state = {
                    "on": fields["on"],
                    "epoch": fields["epoch"],
                    "since_ms": notice.at_ms,
                    "trigger": fields["trigger"],
                    "by": fields["by"],
                }
                self._adopt_crisis(hot, state, str(fields["reason"]))
                hot.pop("policy", None)  # the mode changed: deadlines and intervals too
            elif notice.kind is NoticeKind.ESCALATION:
                escalations = hot.setdefault("escalations", [])
                escalations.append({**fields, "at_ms": notice.at_ms, "id": notice.id})
                del escalations[:-KEEP_ESCALATIONS]
            elif notice.kind is NoticeKind.CHECKIN_DUE:
                due = hot.setdefault("checkins", {})
                due[str(fields["checkin"])] = {**fields, "at_ms": notice.at_ms}
                for old in sorted(due, key=lambda k: due[k]["due_ms"])[:-KEEP_CHECKINS]:
                    del due[old]
            elif notice.kind is NoticeKind.POLICY:
                hot.pop("policy", None)
            elif notice.kind is NoticeKind.WITHDRAWN:
                received = st.received.get(str(fields["message_id"]))
                if received is not None:
                    received["withdrawn_at_ms"] = notice.at_ms
        return [NoticeReceived(notice.kind.value, notice.channel, notice.at_ms, fields, by)]

    async def after_receipts(self, events: Sequence[ClientEvent]) -> list[ClientEvent]:
        """Resend where a rejection can be cured by a fresh seal."""
        from hotline.client.desk import ReceiptReceived

        out: list[ClientEvent] = []
        for ev in events:
            if isinstance(ev, ReceiptReceived) and ev.kind is ReceiptKind.REJECTED and ev.reason:
                try:
                    out.extend(await resend_rejected(self._desk, ev.message_id, ev.issuer, ev.reason))
                except (ClientError, ProtocolError) as exc:
                    from hotline.client.desk import RelayAlarm

                    out.append(RelayAlarm(f"could not resend {ev.message_id} to {ev.issuer}: {exc}"))
        return out
