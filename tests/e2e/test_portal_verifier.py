"""The portal's in-browser verifier (symbolsvc/portal/static/verify.js) against the same
vectors as the server's tree and note code (tests/unit/test_merkle.py, test_checkpoint.py,
test_records.py), run in a real headless Chromium with its own WebCrypto.

* RFC 6962 reference hashes and inclusion proofs (certificate-transparency test data);
* transparency-dev/merkle inclusion vectors, the failing ones included;
* golang.org/x/mod/sumdb/note signed notes (Ed25519, one and two signers, wrong keys);
* the access-record leaf vectors (docs/ACCESS_LOG.md), decoded field by field.

No server: the page is a local file that loads the verifier, and each case is one
``execute_async_script`` call returning what the verifier computed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.portal import chromium

from bench import browser

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
VERIFY_JS = ROOT / "symbolsvc" / "portal" / "static" / "verify.js"

RUN = """
const [source, args, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const V = globalThis.SymbolsvcVerify;
const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
(async () => { return await (eval(source))(V, hex, unhex, args); })()
  .then((value) => done({ ok: true, value }),
        (err) => done({ ok: false, error: String(err && err.message || err) }));
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not browser.available():
        pytest.fail("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    html = tmp_path_factory.mktemp("verifier") / "verifier.html"
    html.write_text(f'<!DOCTYPE html><meta charset="utf-8"><title>verifier vectors</title>'
                    f'<script src="{VERIFY_JS.as_uri()}"></script>')
    with chromium() as driver:
        driver.set_script_timeout(120)
        driver.get(html.as_uri())
        assert driver.execute_script("return !!(globalThis.SymbolsvcVerify && crypto.subtle)")
        yield driver


def run(driver: Any, source: str, args: Any) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_async_script(RUN, source, args)
    return result


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def test_rfc6962_leaf_hashes_roots_and_inclusion_proofs(page: Any) -> None:
    ct = _load("rfc6962_ct.json")
    cases = [{"leaf": ct["leaves"][c["index"]], "index": c["index"], "size": c["size"],
              "proof": c["proof"], "root": ct["roots"][c["size"]]} for c in ct["inclusion"]]
    out = run(page, """async (V, hex, unhex, cases) => {
        const got = [];
        for (const c of cases) {
          const h = await V.leafHash(unhex(c.leaf));
          const root = await V.rootFromInclusionProof(h, BigInt(c.index), BigInt(c.size),
                                                      c.proof.map(unhex));
          got.push(hex(root));
        }
        return got;
    }""", cases)
    assert out["ok"], out
    assert out["value"] == [c["root"] for c in cases]
    assert len(cases) >= 5


def test_transparency_dev_inclusion_vectors(page: Any) -> None:
    vectors = _load("tdmerkle_inclusion.json")["vectors"]
    out = run(page, """async (V, hex, unhex, vectors) => {
        const verdicts = [];
        for (const v of vectors) {
          try {
            const root = await V.rootFromInclusionProof(
              V.b64(v.leafHash), BigInt(v.leafIdx), BigInt(v.treeSize),
              (v.proof || []).map(V.b64));
            verdicts.push(hex(root) === hex(V.b64(v.root)));
          } catch (e) {
            verdicts.push(false);
          }
        }
        return verdicts;
    }""", vectors)
    assert out["ok"], out
    assert out["value"] == [not v["wantErr"] for v in vectors]
    assert any(v["wantErr"] for v in vectors) and any(not v["wantErr"] for v in vectors)


def test_signed_notes_verify_with_webcrypto_ed25519(page: Any) -> None:
    notes = _load("signed_note.json")["go_sumdb_note"]
    peter, enoch = notes["vkey"], notes["enoch_vkey"]
    tampered = notes["note"].replace("cryptography", "Cryptography", 1)
    cases = [
        (notes["note"], peter, notes["text"]),
        (notes["double_signed_note"], peter, notes["text"]),
        (notes["double_signed_note"], enoch, notes["text"]),
        (notes["note"], enoch, None),  # not signed by that key
        (tampered, peter, None),  # the text changed under the signature
        (notes["note"], peter.replace("c74f20a3", "c74f20a4"), None),  # key ID mismatch
        (notes["note"], f"{enoch}\n{peter}", notes["text"]),  # either of a rotation's keys
    ]
    out = run(page, """async (V, hex, unhex, cases) => {
        const got = [];
        for (const [note, vkey] of cases) {
          try { got.push(await V.verifyNoteByAny(note, vkey)); }
          catch (e) { got.push(null); }
        }
        return got;
    }""", [[n, k] for n, k, _ in cases])
    assert out["ok"], out
    assert out["value"] == [want for _, _, want in cases]


def test_checkpoint_bodies_parse_as_the_server_writes_them(page: Any) -> None:
    ex = _load("signed_note.json")["c2sp_tlog_checkpoint_example"]
    body = ex["note"][: ex["note"].rindex("\n\n") + 1]
    out = run(page, """async (V, hex, unhex, bodies) => bodies.map((b) => {
        try { const c = V.parseCheckpoint(b); return [c.origin, String(c.size), hex(c.root)]; }
        catch (e) { return null; }
    })""", [body, "origin\n01\nAAAA\n", "origin\n5\n" + "A" * 44 + "\n", "origin\n5\n"])
    assert out["ok"], out
    root = base64.b64decode(ex["root_hash_b64"]).hex()
    assert out["value"] == [[ex["origin"], str(ex["size"]), root], None, None, None]


def test_access_record_leaves_decode_field_by_field(page: Any) -> None:
    vectors = _load("access_record_v1.json")["vectors"]
    out = run(page, """async (V, hex, unhex, vectors) => {
        const got = [];
        for (const v of vectors) {
          const leaf = unhex(v.leaf_hex);
          const r = V.decodeLeaf(leaf);
          got.push({kind: r.kind, time_us: String(r.timeUs), requester: r.requester,
                    office_work: r.officeWork, info_item: r.infoItem,
                    exchange_id: r.exchangeId, providers: r.providers,
                    leaf_hash: hex(await V.leafHash(leaf))});
        }
        return got;
    }""", vectors)
    assert out["ok"], out
    kinds = {"translate": 1, "resolve": 2}
    for v, got in zip(vectors, out["value"], strict=True):
        rec = v["record"]
        assert got == {"kind": kinds[rec["kind"]], "time_us": str(rec["time_us"]),
                       "requester": rec["requester"], "office_work": rec["office_work"],
                       "info_item": rec["info_item"], "exchange_id": rec["exchange_id"],
                       "providers": rec["providers"], "leaf_hash": v["leaf_hash_hex"]}
    bad = run(page, """async (V, hex, unhex, leaf) => V.decodeLeaf(unhex(leaf))""",
              vectors[0]["leaf_hex"] + "00")  # a trailing byte
    assert not bad["ok"] and "trailing" in bad["error"]
