"""``GET /metrics``: what a relay counts and reads, in Prometheus text format, and who may scrape it."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hotline.protocol.model import Precedence
from hotline.protocol.receipts import ReceiptKind
from hotline.relay.errors import RelayError
from hotline.relay.metrics import RelayMetrics, authorize_scrape
from tests.conftest import BACKENDS
from tests.relay.support import error_code, recv_items, setup_channel

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


# --- the metrics object alone ---------------------------------------------------------------------


def test_receipts_feed_the_latency_histograms_by_precedence():
    m = RelayMetrics()
    m.envelope_accepted("FLASH")
    m.receipt_logged("delivered", "FLASH", at_ms=10_700, accepted_at_ms=10_000)
    m.receipt_logged("acknowledged", "FLASH", at_ms=70_700, accepted_at_ms=10_000, delivered_at_ms=10_700)
    m.receipt_logged("rejected", "ROUTINE", at_ms=5, accepted_at_ms=1)
    s = parse(generate_latest(m.registry).decode())
    assert value(s, "hotline_envelopes_accepted_total", precedence="FLASH") == 1
    assert value(s, "hotline_envelopes_delivered_total", precedence="FLASH") == 1
    assert value(s, "hotline_delivery_latency_seconds_count", precedence="FLASH") == 1
    assert value(s, "hotline_delivery_latency_seconds_sum", precedence="FLASH") == pytest.approx(0.7)
    assert value(s, "hotline_delivery_latency_seconds_bucket", precedence="FLASH", le="0.5") == 0
    assert value(s, "hotline_delivery_latency_seconds_bucket", precedence="FLASH", le="1.0") == 1
    assert value(s, "hotline_acknowledgement_latency_seconds_sum", precedence="FLASH") == pytest.approx(60)
    assert value(s, "hotline_receipts_total", kind="rejected", precedence="ROUTINE") == 1
    assert value(s, "hotline_delivery_latency_seconds_count", precedence="ROUTINE") == 0
    # The FLASH deadline (10 minutes) is a bucket bound: "within deadline" is one bucket.
    assert ("hotline_delivery_latency_seconds_bucket", (("le", "600.0"), ("precedence", "FLASH"))) in s


def test_escalations_are_counted_with_a_precedence_and_a_plain_reason():
    m = RelayMetrics()
    m.count_escalation(Precedence.FLASH, "deadline_missed")
    m.count_escalation("ROUTINE", "link_test_missed")
    s = parse(generate_latest(m.registry).decode())
    assert value(s, "hotline_escalations_total", precedence="FLASH", reason="deadline_missed") == 1
    for bad in ("Deadline missed", "", "x" * 40, "delhi/laptop"):
        with pytest.raises(ValueError):
            m.count_escalation("FLASH", bad)
    with pytest.raises(ValueError):
        m.count_escalation("URGENT", "deadline_missed")


def test_scrapes_need_loopback_or_the_metrics_token():
    authorize_scrape("127.0.0.1", None, None)
    authorize_scrape("::1", None, None)
    for peer in ("10.0.0.5", "192.168.1.2", None, "not-an-address"):
        with pytest.raises(RelayError) as err:
            authorize_scrape(peer, None, None)
        assert err.value.code.value == "forbidden"
    token = SecretStr("m" * 40)
    authorize_scrape("10.0.0.5", "Bearer " + "m" * 40, token)
    for header in (None, "Bearer wrong", "Basic " + "m" * 40, "m" * 40):
        with pytest.raises(RelayError) as err:
            authorize_scrape("127.0.0.1", header, token)  # with a token, loopback needs it too
        assert err.value.code.value == "unauthorized"


# --- a real relay -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_relay_counts_its_traffic_and_shows_queues_and_the_log(relay_factory, backend):
    relay = relay_factory(backend, metrics_cache_s=0)
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    before = scrape(relay.url)
    envelope, _ = delhi.send_text(["islamabad"], "metrics", precedence=Precedence.FLASH)
    delhi.send_text(["islamabad"], "metrics 2", precedence=Precedence.ROUTINE)

    s = scrape(relay.url)
    assert value(s, "hotline_envelopes_accepted_total", precedence="FLASH") == 1
    assert value(s, "hotline_envelopes_accepted_total", precedence="ROUTINE") == 1
    assert value(s, "hotline_queue_depth", kind="envelope", precedence="FLASH") == 1
    assert value(s, "hotline_queue_depth", kind="envelope", precedence="ROUTINE") == 1
    assert value(s, "hotline_queue_oldest_pending_seconds", precedence="FLASH") >= 0
    assert value(s, "hotline_database_up") == 1
    audit_size = relay.admin.get("/v1/admin/audit", params={"limit": 1}).json()["size"]
    assert value(s, "hotline_audit_log_size") == audit_size
    assert value(s, "hotline_http_responses_total", status="201") >= 2 + value(
        before, "hotline_http_responses_total", status="201"
    )

    ws = isb.socket()
    try:
        items = recv_items(ws, 2)
        assert value(scrape(relay.url), "hotline_open_sockets") == 1
        for kind in (ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED):
            assert isb.send_receipt(isb.receipt(envelope, kind)).status_code == 201
        isb.ack(i["id"] for i in items)
    finally:
        ws.close()
    s = scrape(relay.url)
    assert value(s, "hotline_envelopes_delivered_total", precedence="FLASH") == 1
    assert value(s, "hotline_delivery_latency_seconds_count", precedence="FLASH") == 1
    assert value(s, "hotline_acknowledgement_latency_seconds_count", precedence="FLASH") == 1
    assert value(s, "hotline_receipts_total", kind="acknowledged", precedence="FLASH") == 1
    assert value(s, "hotline_queue_depth", kind="envelope", precedence="FLASH") == 0
    assert value(s, "hotline_queue_depth", kind="receipt", precedence="FLASH") == 2  # Delhi's, pending


def test_with_a_metrics_token_every_scrape_needs_it(relay_factory):
    token = "scrape-" + "t" * 40
    relay = relay_factory("sqlite", metrics_token=token)
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = httpx.get(relay.url + "/metrics", headers=headers)
        assert (r.status_code, error_code(r)) == (401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    assert value(scrape(relay.url, token), "hotline_database_up") == 1


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_without_a_token_a_non_loopback_peer_is_refused(relay_factory):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    relay = relay_factory("sqlite", host="0.0.0.0")
    port = relay.url.rsplit(":", 1)[1]
    r = httpx.get(f"http://{address}:{port}/metrics")
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    assert httpx.get(f"http://{address}:{port}/healthz").status_code == 200
