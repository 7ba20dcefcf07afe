"""Every bad input answered with the right code and no noise (issue 11, items 4-6).

Undecodable bodies, page tokens, oversized stream chunks, policy files that are
not UTF-8 or have no rules, and a full disk, over real mTLS to a real server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest
from helpers import (
    SERVING,
    TEST_POLICY,
    Clients,
    NumberSource,
    ServerProcess,
    StartServer,
    call_error,
    row_counts,
    wait_until,
)
from symbolsvc_client import CallError, Deployment
from symbolsvc_client.channel import Identity, open_channel
from test_access_log import ITEM, OFFICE, PROVIDERS, REQUESTER
from test_isolation_limits import OpenStream

from symbolsvc.pki import issue_leaf, load_ca, spiffe_id, write_pair

Code = grpc.StatusCode
GARBAGE = [b"\xff", b"\x0a\x05abc", b"\x12\xff\xff\xff\xff\x0f", b"\x08" * 40, b"\x0b\x0c"]


def raw_call(channel: grpc.Channel, method: str, body: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        call(body, timeout=10)
    except grpc.RpcError as err:
        return err.code()
    return Code.OK


def test_undecodable_bodies_are_invalid_argument_after_authentication(
        fresh_deployment: Path, start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(fresh_deployment)
    dep = Deployment(fresh_deployment)
    method = "/symbolsvc.v1.SymbolService/IssueSymbol"
    before = row_counts(dep.dir)
    mark = server.log_size()
    agency = dep.channel("city-chiyoda", server.address)
    for body in GARBAGE * 20:
        err = raw_call(agency, method, body)
        assert err == Code.INVALID_ARGUMENT, body
    with pytest.raises(grpc.RpcError) as info:
        agency.unary_unary(method)(b"\xff", timeout=10)
    assert CallError.from_rpc_error(info.value).reason == "MALFORMED_REQUEST"
    # Authentication first: a principal without the role is denied, not told about the body.
    assert raw_call(dep.channel("broker", server.address), method, b"\xff") == \
        Code.PERMISSION_DENIED
    # A certificate of the deployment CA that names no principal: UNAUTHENTICATED.
    stranger = issue_leaf(load_ca(dep.pki), "stranger", spiffe_id("agency", "stranger"))
    write_pair(stranger, tmp_path, "stranger")
    ident = Identity.from_files(dep.pki / "ca.crt", tmp_path / "stranger.crt",
                                tmp_path / "stranger.key")
    assert raw_call(open_channel(ident, server.address), method, b"\xff") == \
        Code.UNAUTHENTICATED
    # Nothing written, no traceback, and one security-log line per principal per interval.
    assert row_counts(dep.dir) == before
    log = server.log_text()[mark:]
    assert "Traceback" not in log and "ERROR" not in log
    events = [e for e in map(json.loads, server.security_log_text().splitlines())
              if e.get("event") == "malformed_request" and e["principal"] == "city-chiyoda"]
    assert 1 <= len(events) <= 3, events  # at most one per 10 s for ~100 bodies
    agency.close()


@pytest.fixture
def subject_with_records(server: ServerProcess, dep: Deployment,
                         numbers: NumberSource) -> tuple[Clients, str]:
    c = Clients(dep, server.address)
    n = numbers.one()
    s = {a: c.agency(a).issue(n).symbol for a in (REQUESTER, *PROVIDERS)}
    portal_symbol = c.portal().agency.issue(n).symbol
    for i in range(3):
        c.broker().translate(REQUESTER, s[REQUESTER], PROVIDERS[0], OFFICE, ITEM,
                             f"pt-{i}-{uuid.uuid4()}")
    return c, portal_symbol


def test_page_tokens_are_validated(subject_with_records: tuple[Clients, str]) -> None:
    c, symbol = subject_with_records
    portal = c.portal()
    first = portal.list_records(symbol, page_size=1)
    assert first.next_page_token
    second = portal.list_records(symbol, page_size=1, page_token=first.next_page_token)
    assert second.records[0].record_id < first.records[0].record_id
    bad = [
        "\uff19",                    # a full-width digit nine
        "1\u0663",                   # an Arabic-Indic digit three
        "9223372036854775808",       # 2**63: beyond a signed 64-bit id
        "99999999999999999999",      # 20 digits
        "0", "-1", " 1", "1 ", "+1", "abc",
        "9223372036854775807",       # in range, but no record was issued under it
    ]
    for token in bad:
        err = call_error(portal.list_records, symbol, 1, token)
        assert (err.code, err.reason, err.field) == \
            (Code.INVALID_ARGUMENT, "BAD_PAGE_TOKEN", "page_token"), token


def test_page_token_of_another_subject_is_refused(
        subject_with_records: tuple[Clients, str], dep: Deployment, server: ServerProcess,
        numbers: NumberSource) -> None:
    c, symbol = subject_with_records
    n = numbers.one()
    s = {a: c.agency(a).issue(n).symbol for a in (REQUESTER, *PROVIDERS)}
    other_symbol = c.portal().agency.issue(n).symbol
    for i in range(2):
        c.broker().translate(REQUESTER, s[REQUESTER], PROVIDERS[0], OFFICE, ITEM, f"o-{i}")
    token = c.portal().list_records(other_symbol, page_size=1).next_page_token
    assert token
    err = call_error(c.portal().list_records, symbol, 1, token)
    assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, "BAD_PAGE_TOKEN")


def test_an_oversized_chunk_fails_alone(server: ServerProcess, dep: Deployment,
                                        numbers: NumberSource) -> None:
    channel = dep.channel("city-minato", server.address)
    stream = OpenStream(channel, numbers.one())
    # 100,000 numbers (1.4 MB): one small reply with one error, and the stream goes on.
    big = stream.send(2, [numbers.one() for _ in range(100_000)])
    assert big.chunk_id == 2
    assert len(big.results) == 1
    assert big.results[0].error.reason == "BATCH_TOO_LARGE"
    assert big.ByteSize() < 1024
    empty = stream.send(3, [])
    assert (empty.chunk_id, empty.results[0].error.reason) == (3, "EMPTY_BATCH")
    good = stream.send(4, numbers.many(5))
    assert good.chunk_id == 4 and all(r.HasField("issued") for r in good.results)
    stream.close()
    channel.close()


def test_policy_reload_refuses_non_utf8_and_empty_tables(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server = start_server(fresh_deployment)
    c = Clients(Deployment(fresh_deployment), server.address)
    n = numbers.one()
    s = {a: c.agency(a).issue(n).symbol for a in (REQUESTER, PROVIDERS[0])}

    def allowed() -> str:
        return c.broker().translate(REQUESTER, s[REQUESTER], PROVIDERS[0], OFFICE, ITEM,
                                    f"reload-{uuid.uuid4()}").provider_symbol

    policy = fresh_deployment / "policy.toml"
    for name, data, why in [
        ("latin-1", TEST_POLICY.encode() + b"# caf\xe9\n", "not UTF-8"),
        ("empty", b"", "no [[allow]] rules"),
        ("groups only", b'[groups]\nx = ["city-chiyoda"]\n', "no [[allow]] rules"),
    ]:
        policy.write_bytes(data)
        mark = server.log_size()
        server.signal(signal.SIGHUP)
        line = server.wait_for_log(r"permission table NOT reloaded", since=mark)
        assert why in line, name
        assert "Traceback" not in server.log_text()[mark:], name
        assert allowed() == s[PROVIDERS[0]], name  # the previous table is still in force
    # Denying everything on purpose is possible, when said explicitly.
    policy.write_text("deny_all = true\n")
    mark = server.log_size()
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"permission table reloaded: 0 rules", since=mark)
    assert call_error(allowed).reason == "NOT_PERMITTED"
    c.close()


@pytest.mark.sqlite_only("fills the filesystem that holds the SQLite registry")
def test_disk_full_is_resource_exhausted_and_not_serving(
        fresh_deployment: Path, start_server: StartServer, tmp_path: Path,
        numbers: NumberSource) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], check=True)
    try:
        server = start_server(fresh_deployment, {"storage": {"url": f"sqlite:{mnt}/r.db"}})
        dep = Deployment(fresh_deployment)
        agency = dep.agency("city-chiyoda", server.address)
        acknowledged = {n: agency.issue(n).symbol for n in numbers.many(20)}
        filler = mnt / "filler"
        with filler.open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        codes = set()
        for _ in range(20):  # until a commit needs a new page
            try:
                agency.issue_batch(numbers.many(500))
            except CallError as err:
                codes.add((err.code, err.reason))
                break
        assert codes == {(Code.RESOURCE_EXHAUSTED, "STORAGE_FULL")}, codes
        server.wait_for_log(r"disk holding .* is full")
        wait_until(lambda: agency.health() != SERVING, 10, "health NOT_SERVING")
        filler.unlink()
        wait_until(lambda: agency.health() == SERVING, 10, "health SERVING again")
        assert agency.issue(numbers.one()).symbol
        for n, symbol in acknowledged.items():  # nothing acknowledged was lost
            assert agency.issue(n).symbol == symbol
        assert "cannot rollback" not in server.log_text()
        agency.close()
        server.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
