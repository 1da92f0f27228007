"""Schemathesis against the relay's own OpenAPI schema, with a bounded budget.

Every operation gets generated requests (valid and invalid by the schema) with the admin token on
admin paths and a device token on channel paths; half of the channel requests name the device's real
channel so that authenticated code runs, not only the membership check. The relay must never answer
5xx, and its answers must match the schema's content types and bodies.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks

from tests.relay.support import setup_channel

EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def fuzz_world(relay_factory):
    relay = relay_factory(
        "sqlite", rate_per_s=10_000, rate_burst=10_000, address_rate_per_s=10_000, address_rate_burst=10_000
    )
    channel, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    desks["delhi"].send_text(["islamabad"], "something to find")
    return relay, channel, desks


@pytest.fixture(scope="module")
def relay_schema(fuzz_world):
    relay, _, _ = fuzz_world
    return schemathesis.openapi.from_url(relay.url + "/openapi.json")


SCHEMA_CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def call(case, fuzz_world) -> None:
    relay, channel, desks = fuzz_world
    path = case.operation.path
    headers = dict(case.headers or {})
    if path.startswith("/v1/admin/"):
        headers["Authorization"] = f"Bearer {relay.admin_token}"
    elif path.startswith("/v1/channels/"):
        desk = desks["delhi"]
        headers["Authorization"] = f"Bearer {desk.token}"
        params = case.path_parameters if case.path_parameters is not None else {}
        if "channel" in params and hash(repr(params)) % 2 == 0:
            params["channel"] = channel
        # Never let the fuzzer revoke the device whose token it uses.
        if path.endswith("/revoke") and params.get("device") == desk.address.device:
            params["device"] = "other"
    case.call_and_validate(base_url=relay.url, headers=headers, checks=SCHEMA_CHECKS)


@pytest.mark.slow
def test_no_operation_answers_5xx_or_off_schema(relay_schema, fuzz_world):
    """One bounded hypothesis run per operation and generation mode; every failure is reported."""
    failures = []
    operations = [result.ok() for result in relay_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        for mode in MODES:

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                call(case, fuzz_world)

            try:
                run()
            except Unsatisfiable:
                pass  # no invalid request exists for an operation without parameters or body
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
