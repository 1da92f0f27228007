"""The browser passes the semantics vectors (tests/vectors/semantics.json) as the Python core does.

Acts signed by desks, notices signed by the relay and a signed refusal: each is parsed and verified in
the page with the key of its signer, its signed input and hash recomputed byte for byte; every negative
vector is refused with its error code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import SelftestPage

pytestmark = pytest.mark.browser

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "semantics.json").read_text("utf-8"))

CHECK = """async (doc) => {
  const p = await import("/js/protocol/index.js");
  const { frame, utf8 } = p;
  const { sha256 } = await import("/js/protocol/crypto.js");
  const keyOf = (who) => p.b64d(doc.keys[who].public_key_b64, { field: "key" });
  const parse = { act: p.Act.fromJson, notice: p.Notice.fromJson, receipt: (w) => p.Receipt.fromJson(w) };
  // A notice is the relay's; an act or a receipt is its issuer device's.
  const signerOf = (what, parsed) =>
    what === "notice" ? "relay" : `${parsed.issuer.member}/${parsed.issuer.device}`;
  const out = {};
  for (const what of ["act", "notice", "receipt"]) {
    for (const v of doc[what + "s"]) {
      try {
        const parsed = await parse[what](v.wire);
        await parsed.verify(keyOf(v.signer));
        const body = p.b64d(v.wire.body, { field: "body" });
        const sig = p.b64d(v.wire.sig, { field: "sig" });
        const domain = utf8(doc.domains[what]);
        const ok = p.b64e(frame(domain, body)) === v.signed_input_b64 &&
          p.b64e(await sha256(frame(domain, body, sig))) === v.hash_b64 &&
          new TextDecoder().decode(body) === v.body_text;
        out[v.name] = ok ? "ok" : "bytes differ";
      } catch (e) {
        out[v.name] = e.code ?? String(e);
      }
    }
  }
  for (const v of doc.negative) {
    try {
      const parsed = await parse[v.what](v.wire);
      await parsed.verify(keyOf(signerOf(v.what, parsed)));
      out[v.name] = "ok";
    } catch (e) {
      out[v.name] = e.code ?? String(e);
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def verdicts(selftest: SelftestPage) -> dict[str, str]:
    result: dict[str, str] = selftest.page.evaluate(CHECK, VECTORS)
    return result


@pytest.mark.parametrize("name", [v["name"] for k in ("acts", "notices", "receipts") for v in VECTORS[k]])
def test_statement_verifies_byte_for_byte(verdicts: dict[str, str], name: str) -> None:
    assert verdicts[name] == "ok"


@pytest.mark.parametrize("vector", VECTORS["negative"], ids=[v["name"] for v in VECTORS["negative"]])
def test_negative_statement_is_refused_with_its_code(
    verdicts: dict[str, str], vector: dict[str, Any]
) -> None:
    assert verdicts[vector["name"]] == vector["error"]
