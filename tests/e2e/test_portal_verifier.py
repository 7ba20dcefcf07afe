"""The portal's in-browser verifier (symbolsvc/portal/static/verify.js) against the same
vectors as the server's tree and note code (tests/unit/test_merkle.py, test_checkpoint.py,
test_records.py), run in a real headless Chromium with its own WebCrypto.

* RFC 6962 reference hashes and inclusion proofs (certificate-transparency test data);
* transparency-dev/merkle inclusion vectors, the failing ones included;
* golang.org/x/mod/sumdb/note signed notes (Ed25519, one and two signers, wrong keys);
* the access-record leaf vectors (docs/ACCESS_LOG.md), decoded field by field;
* witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1) made here from the spec.

No server: the page is a local file that loads the verifier, and each case is one
``execute_async_script`` call returning what the verifier computed.
"""

from __future__ import annotations

import base64
import hashlib
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


def _witness(name: str) -> tuple[str, Any]:
    """A witness key and its cosignature/v1 vkey, written from c2sp.org/tlog-cosignature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    typed = base64.b64encode(b"\x04" + pub).decode()
    return f"{name}+{kid.hex()}+{typed}", (name, kid, key)


def _cosign(body: str, witness: tuple[str, bytes, Any], timestamp: int) -> str:
    name, kid, key = witness
    sig = key.sign(b"cosignature/v1\n" + f"time {timestamp}\n".encode() + body.encode())
    blob = kid + timestamp.to_bytes(8, "big") + sig
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


def test_witness_cosignatures_are_counted_and_a_bad_one_fails(page: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from symbolsvc.log.checkpoint import Checkpoint, sign_checkpoint, vkey_string

    leaf = bytes.fromhex(_load("access_record_v1.json")["vectors"][0]["leaf_hex"])
    root = hashlib.sha256(b"\x00" + leaf).digest()  # a one-leaf tree
    log_key = Ed25519PrivateKey.generate()
    origin = "symbolsvc.local/access-log"
    note = sign_checkpoint(Checkpoint(origin, 1, root), log_key)
    body = note[: note.rindex("\n\n") + 1]
    (v1, w1), (v2, w2), (v3, _) = (_witness(f"witness.example/w{i}") for i in (1, 2, 3))
    cosigned = note + _cosign(body, w1, 1_767_225_600) + _cosign(body, w2, 1_767_225_601)
    line = _cosign(body, w1, 1_767_225_600)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1  # the timestamp, no longer the one signed
    forged = note + line.replace(line.split(" ")[2], base64.b64encode(bytes(blob)).decode() + "\n")
    proof = {"leaf": base64.b64encode(leaf).decode(), "leaf_index": 0, "checkpoint": cosigned,
             "hashes": []}
    log_vkey = vkey_string(origin, log_key.public_key())
    out = run(page, """async (V, hex, unhex, a) => {
        const count = async (note, keys) => {
          try { return await V.countCosignatures(note, keys); } catch (e) { return e.message; }
        };
        const record = async (quorum) => {
          try {
            const r = await V.verifyRecord(a.proof, a.log, null, {vkeys: a.keys, quorum});
            return ["ok", r.cosigned];
          } catch (e) { return ["fail", e.message]; }
        };
        return [await count(a.cosigned, a.keys), await count(a.note, a.keys),
                await count(a.forged, a.keys), await count(a.cosigned, [a.log]),
                await record(2), await record(3)];
    }""", {"cosigned": cosigned, "note": note, "forged": forged, "keys": [v1, v2, v3],
           "proof": proof, "log": log_vkey})
    assert out["ok"], out
    both, none, forged_result, wrong_type, quorum2, quorum3 = out["value"]
    assert (both, none) == (2, 0)
    assert "does not verify" in forged_result
    assert "malformed" in wrong_type  # a log (0x01) key is not a witness key
    assert quorum2 == ["ok", 2]
    assert quorum3[0] == "fail" and "2 of the 3 witness cosignatures" in quorum3[1]
