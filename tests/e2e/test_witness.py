"""Witnessed checkpoints (docs/WITNESS.md): real ``symbolsvc witness serve`` processes, real
servers submitting to them, and an independent cosignature verifier
(tests/helpers/cosignatures.py, written from the C2SP text).

* two witnesses, quorum 2: the log's checkpoints come back cosigned by both, through
  GetCheckpoint, GetRecordProof and ``audit verify --witness-vkey ... --witness-quorum 2``;
* a fork (a second log with the same origin and key but its own database, i.e. a
  diverging tree) is refused by both witnesses, which keep the evidence, and never gets a
  cosignature;
* the add-checkpoint protocol's answers (200, 400, 403, 404, 409 with the size, 409 on a
  same-size fork, 413, 422) on a witness driven directly over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import Registries, copy_deployment, wait_until
from helpers.backends import per_backend
from helpers.cosignatures import independent_cosigners
from helpers.memory_tree import MemoryTree
from helpers.notes import independent_verify
from helpers.witnesses import WitnessProcess
from symbolsvc_client.channel import Deployment
from symbolsvc_client.checkpoints import CheckpointRejected, verify_checkpoint
from symbolsvc_client.clients import CallError

from symbolsvc.cli import main
from symbolsvc.log.checkpoint import Checkpoint, sign_checkpoint, vkey_string
from symbolsvc.log.hashing import leaf_hash
from symbolsvc.log.proofs import consistency_proof_nodes, resolve_nodes
from symbolsvc.witness.state import Known, WitnessState

ORIGIN = "symbolsvc.local/access-log"
REQUESTER, PROVIDER = "pension-service", "city-chiyoda"
OFFICE, ITEM = "survivor-pension", "resident-tax-income"
FAST = {"access_log": {"integrate_interval_ms": 50, "lease_ms": 600},
        "witnessing": {"retry_ms": 200, "timeout_ms": 10_000}}
WAIT = 60  # seconds: generous bounds on a loaded machine; polled, never slept


def _witness_config(*witnesses: WitnessProcess) -> dict[str, Any]:
    return {**FAST, "witness": {f"w{i}": {"url": w.url, "vkey": w.vkey}
                                for i, w in enumerate(witnesses, 1)}}


def _translations(dep: Deployment, address: str, number: str, count: int, tag: str
                  ) -> tuple[str, list[int]]:
    """``count`` logged translations of one subject; the portal's symbol and record ids."""
    with dep.agency(REQUESTER, address) as req, dep.agency(PROVIDER, address) as prov, \
            dep.broker(address) as broker, dep.portal(address) as portal:
        symbol = req.issue(number).symbol
        prov.issue(number)
        portal_symbol = portal.agency.issue(number).symbol
        ids = [broker.translate(REQUESTER, symbol, PROVIDER, OFFICE, ITEM, f"{tag}-{i}").record_id
               for i in range(count)]
    return portal_symbol, ids


def _witnessed(dep: Deployment, address: str, quorum: int, min_size: int) -> str:
    """Poll GetCheckpoint(min_cosignatures=quorum) until it names a tree of min_size."""
    with dep.auditor(address) as auditor:
        def ready() -> str | None:
            try:
                note = auditor.checkpoint(min_cosignatures=quorum)
            except CallError as err:
                if err.code != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return None
            return note if int(note.split("\n")[1]) >= min_size else None

        return wait_until(ready, WAIT, f"a checkpoint of {min_size}+ leaves cosigned by "
                                       f"{quorum} witnesses")


@pytest.fixture
def witnesses(tmp_path: Path, deployment_template: Path) -> Iterator[list[WitnessProcess]]:
    log_vkey = (deployment_template / "pki" / "log.vkey").read_text().strip()
    procs = [WitnessProcess(tmp_path / f"witness{i}", f"witness.test/w{i}", [log_vkey])
             for i in (1, 2)]
    try:
        for w in procs:
            w.start()
        yield procs
    finally:
        for w in procs:
            w.stop()


def test_two_witnesses_quorum_two_and_a_fork_refused_by_both(
        witnesses: list[WitnessProcess], deployment_template: Path, registries: Registries,
        start_server: Any, numbers: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    w1, w2 = witnesses
    vkeys = [w1.vkey, w2.vkey]
    log_vkey = (deployment_template / "pki" / "log.vkey").read_text().strip()

    # -- the honest log: every checkpoint is cosigned by both witnesses
    a_dir = registries.provision(copy_deployment(deployment_template, tmp_path / "a"))
    a = start_server(a_dir, _witness_config(w1, w2))
    dep_a = Deployment(a_dir)
    portal_symbol, ids = _translations(dep_a, a.address, numbers.one(), 3, "honest")
    note = _witnessed(dep_a, a.address, 2, 3)
    independent_verify(note, log_vkey)  # the log's own signature is still there
    cosigners = independent_cosigners(note, vkeys)
    assert sorted(cosigners) == ["witness.test/w1", "witness.test/w2"]
    # the client library's verifier accepts it with 2 of 2, refuses 2 of a wrong pair
    verified = verify_checkpoint(note, log_vkey, witness_vkeys=vkeys, quorum=2, origin=ORIGIN)
    assert verified.witnesses == ("witness.test/w1", "witness.test/w2")
    with pytest.raises(CheckpointRejected, match="1 valid witness"):
        verify_checkpoint(note, log_vkey, quorum=2,
                          witness_vkeys=[w1.vkey, vkey_string_for_new_witness("witness.test/x")])

    # the portal's proof carries a checkpoint both witnesses cosigned
    with dep_a.portal(a.address) as portal:
        proof = wait_until(lambda: _proof_or_none(portal, portal_symbol, ids[-1]), WAIT,
                           "a witnessed record proof")
    assert sorted(independent_cosigners(proof.checkpoint, vkeys)) == sorted(cosigners)

    # audit verify over gRPC requires 2 of 2 (one vkey inline, one as the file init wrote)
    rc = main(["audit", "verify", "--deployment", str(a_dir), "--target", a.address,
               "--witness-vkey", w1.vkey, "--witness-vkey", str(w2.directory / "witness.vkey"),
               "--witness-quorum", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "cosigned by 2 witness(es): witness.test/w1, witness.test/w2" in out
    # a witness the log never used: its cosignature is missing, verification fails (exit 1)
    stranger = vkey_string_for_new_witness("witness.test/stranger")
    rc = main(["audit", "verify", "--deployment", str(a_dir), "--target", a.address,
               "--witness-vkey", stranger, "--witness-vkey", w1.vkey, "--witness-quorum", "2"])
    out, err = capsys.readouterr()
    assert rc == 1 and "not witnessed" in err

    copy = per_backend(a_dir).file_copy(a_dir, tmp_path / "copy.db")
    if copy is not None:  # a copy of the database file verifies offline too
        rc = main(["audit", "verify", "--db", str(copy), "--vkey", str(a_dir / "pki" / "log.vkey"),
                   "--witness-vkey", w1.vkey, "--witness-vkey", w2.vkey])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert "cosigned by 2 witness(es): witness.test/w1, witness.test/w2" in out

    # both witnesses hold exactly the honest log's latest tree (A is idle from here on)
    states = [WitnessState(w.directory / "witness.db") for w in witnesses]
    with dep_a.auditor(a.address) as auditor_a:
        def witnesses_follow_a() -> bool:
            lines = auditor_a.checkpoint().split("\n")
            want = Known(int(lines[1]), base64.b64decode(lines[2]))
            return all(s.known(ORIGIN) == want for s in states)

        wait_until(witnesses_follow_a, WAIT, "both witnesses at the honest log's latest tree")
    witnessed = states[0].known(ORIGIN)
    witnessed_size = witnessed.size
    assert witnessed_size >= 3

    # -- the fork: same origin and log key, its own database (a diverging tree)
    b_dir = registries.provision(copy_deployment(deployment_template, tmp_path / "b"))
    b = start_server(b_dir, _witness_config(w1, w2))
    dep_b = Deployment(b_dir)
    _translations(dep_b, b.address, numbers.one(), witnessed_size + 2, "fork")

    def refused_by_both() -> bool:
        return all(any("not consistent" in reason or "forked" in reason
                       for _, reason in s.refusals(ORIGIN)) for s in states)

    wait_until(refused_by_both, WAIT, "both witnesses refusing the forked log")
    with dep_b.auditor(b.address) as auditor:
        err_b = _call_error(lambda: auditor.checkpoint(min_cosignatures=1))
        assert err_b.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "NOT_WITNESSED" in str(err_b)
        latest_b = auditor.checkpoint()
    assert independent_cosigners(latest_b, vkeys) == {}
    # the witnesses still hold the honest log's tree, and keep cosigning it
    for s in states:
        assert s.known(ORIGIN) == witnessed
    _translations(dep_a, a.address, numbers.one(), 1, "honest-after")
    later = _witnessed(dep_a, a.address, 2, witnessed_size + 1)
    assert sorted(independent_cosigners(later, vkeys)) == sorted(cosigners)


def test_witnesses_hung_or_down_never_hold_up_requests(
        deployment_template: Path, registries: Registries, start_server: Any, numbers: Any,
        tmp_path: Path) -> None:
    """One witness accepts connections and never answers (its add-checkpoint is in flight
    for the whole test, by construction: nothing ever reads the socket), the other is not
    listening at all. Issuance and translation are answered regardless, checkpoints are
    signed, and a witnessed checkpoint is reported missing rather than faked."""
    import socket

    hung = socket.create_server(("127.0.0.1", 0), backlog=16)  # never accept()ed
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        config = {**FAST, "witnessing": {"retry_ms": 100, "timeout_ms": 600_000},
                  "witness": {
                      "hung": {"url": f"http://127.0.0.1:{hung.getsockname()[1]}",
                               "vkey": vkey_string_for_new_witness("witness.test/hung")},
                      "down": {"url": f"http://127.0.0.1:{closed_port}",
                               "vkey": vkey_string_for_new_witness("witness.test/down")}}}
        directory = registries.provision(copy_deployment(deployment_template, tmp_path / "d"))
        server = start_server(directory, config)
        dep = Deployment(directory)
        number = numbers.one()
        _, ids = _translations(dep, server.address, number, 5, "unwitnessed")
        assert len(ids) == 5
        with dep.auditor(server.address) as auditor:
            wait_until(lambda: int(auditor.checkpoint().split("\n")[1]) >= 5, WAIT,
                       "the records in a signed checkpoint")
            err = _call_error(lambda: auditor.checkpoint(min_cosignatures=1))
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "NOT_WITNESSED" in str(err)
        wait_until(lambda: "witness.test/down did not cosign" in server.log_text(), WAIT,
                   "the unreachable witness logged")
        assert number not in server.log_text()
    finally:
        hung.close()


def _proof_or_none(portal: Any, symbol: str, record_id: int) -> Any:
    try:
        return portal.record_proof(symbol, record_id, min_cosignatures=2)
    except CallError as err:
        if err.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return None


def _call_error(fn: Any) -> CallError:
    try:
        fn()
    except CallError as err:
        return err
    raise AssertionError("expected the call to fail")


def vkey_string_for_new_witness(name: str) -> str:
    from symbolsvc.log.cosignature import witness_vkey_string

    return witness_vkey_string(name, Ed25519PrivateKey.generate().public_key())


# ----------------------------------------------------------------- the protocol itself

TEST_ORIGIN = "log.test/direct"


class _Log:
    """A log made in the test: a tree in memory and its own key."""

    def __init__(self, key: Ed25519PrivateKey, seed: bytes) -> None:
        self.key, self.seed, self.tree = key, seed, MemoryTree()

    def grow(self, to: int) -> None:
        while self.tree.size < to:
            self.tree.append(leaf_hash(hashlib.sha256(self.seed + bytes([self.tree.size]))
                                       .digest()))

    def note(self, size: int, key: Ed25519PrivateKey | None = None) -> str:
        return sign_checkpoint(Checkpoint(TEST_ORIGIN, size, self.tree.root(size)),
                               key or self.key)

    def proof(self, old: int, new: int) -> list[bytes]:
        return resolve_nodes(consistency_proof_nodes(old, new), self.tree)


def _declares_huge_body(url: str) -> int:
    """POST headers declaring a 100 kB body and send none of it: the witness must answer
    413 from the header alone (a raw socket, so no half-sent body can race the answer)."""
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


def _body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old}\n{lines}\n{note}".encode()


def test_add_checkpoint_answers_as_the_spec_says(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    log_vkey = vkey_string(TEST_ORIGIN, key.public_key())
    witness = WitnessProcess(tmp_path / "w", "witness.test/direct", [log_vkey]).start()
    honest, fork = _Log(key, b"honest"), _Log(key, b"fork")
    honest.grow(6)
    fork.grow(6)
    try:
        with httpx.Client(base_url=witness.url, timeout=30) as http:
            def post(body: bytes) -> httpx.Response:
                return http.post("/add-checkpoint", content=body)

            ok = post(_body(0, [], honest.note(4)))
            assert ok.status_code == 200, ok.text
            cosigners = independent_cosigners(honest.note(4) + ok.text, [witness.vkey])
            assert list(cosigners) == ["witness.test/direct"]
            # the old size is not the one it cosigned: 409 with that size
            stale = post(_body(0, [], honest.note(5)))
            assert stale.status_code == 409
            assert stale.text == "4\n"
            assert stale.headers["content-type"].startswith("text/x.tlog.size")
            # a diverging tree of the same size: 409 (fork); of a larger size: 422
            assert post(_body(4, [], fork.note(4))).status_code == 409
            assert post(_body(4, fork.proof(4, 6), fork.note(6))).status_code == 422
            # unknown origin 404, no trusted signature 403, malformed 400, huge 413
            other = sign_checkpoint(Checkpoint("log.test/other", 4, honest.tree.root(4)), key)
            assert post(_body(0, [], other)).status_code == 404
            assert post(_body(4, honest.proof(4, 6), honest.note(6, Ed25519PrivateKey
                                                                   .generate()))
                        ).status_code == 403
            assert post(b"old 04\n\n" + honest.note(6).encode()).status_code == 400
            assert post(_body(7, [], honest.note(6))).status_code == 400
            assert _declares_huge_body(witness.url) == 413
            # the honest extension is still accepted after all that
            good = post(_body(4, honest.proof(4, 6), honest.note(6)))
            assert good.status_code == 200, good.text
            assert list(independent_cosigners(honest.note(6) + good.text, [witness.vkey]))
        state = WitnessState(witness.directory / "witness.db")
        assert state.known(TEST_ORIGIN).size == 6
        assert [old for old, _ in state.refusals(TEST_ORIGIN)] == [4, 4]  # the evidence
    finally:
        witness.stop()
