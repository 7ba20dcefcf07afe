"""symbolsvc-client against a real server: each role, sync and asyncio, deadlines,
targets (host names, IPv4 and IPv6 literals, dns:///), and the TLS server name."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest

import symbolsvc_client
from symbolsvc_client import CallError, Deployment, resolve_target

OFFICE_WORK, INFO_ITEM = "resident-tax", "national-tax-income"  # city-chiyoda -> tax-office


def test_server_is_not_installed() -> None:
    with pytest.raises(ImportError):
        __import__("symbolsvc")
    assert symbolsvc_client.__version__ != "0+unknown"
    assert "site-packages" in (symbolsvc_client.__file__ or "")  # the installed copy


def test_every_role_sync(deployment_dir: Path, port: int, number: str) -> None:
    dep = Deployment(deployment_dir)
    target = f"127.0.0.1:{port}"
    with dep.agency("city-chiyoda", target) as chiyoda, dep.agency("tax-office", target) as tax:
        first = chiyoda.issue(number)
        assert first.newly_registered and first.symbol.startswith("k")
        again = chiyoda.issue_batch([number])[0]
        assert again.issued.symbol == first.symbol and not again.issued.newly_registered
        replies = list(chiyoda.issue_stream([[number], [number]]))
        assert [r.chunk_id for r in replies] == [0, 1]
        provider_symbol = tax.issue(number).symbol
    with dep.broker(target) as broker:
        reply = broker.translate("city-chiyoda", first.symbol, "tax-office", OFFICE_WORK,
                                 INFO_ITEM, str(uuid.uuid4()))
        assert reply.provider_symbol == provider_symbol
    with dep.auditor(target) as auditor:
        assert auditor.checkpoint().count("\n") >= 3
    with dep.portal(target) as portal:
        assert portal.all_records(portal.agency.issue(number).symbol) is not None


def test_every_role_asyncio(deployment_dir: Path, port: int, number: str) -> None:
    dep = Deployment(deployment_dir)
    target = f"127.0.0.1:{port}"

    async def main() -> None:
        async with dep.aio_agency("city-chiyoda", target) as chiyoda, \
                dep.aio_agency("tax-office", target) as tax:
            sym = (await chiyoda.issue(number)).symbol
            provider_symbol = (await tax.issue(number)).symbol

            async def chunks():  # type: ignore[no-untyped-def]
                yield [number]
                yield [number, "123"]

            results = [r async for r in chiyoda.issue_stream(chunks())]
            assert results[1].results[1].error.reason
            with pytest.raises(CallError) as err:
                await chiyoda.issue("123")
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.reason
        async with dep.aio_broker(target) as broker:
            reply = await broker.translate("city-chiyoda", sym, "tax-office", OFFICE_WORK,
                                           INFO_ITEM, str(uuid.uuid4()))
            assert reply.provider_symbol == provider_symbol
        async with dep.aio_auditor(target) as auditor:
            assert (await auditor.checkpoint()).count("\n") >= 3

    asyncio.run(main())


def test_streams_have_a_default_deadline(deployment_dir: Path, port: int) -> None:
    # WatchAccessRecords never ends by itself: only the default stream deadline ends it.
    dep = Deployment(deployment_dir, stream_timeout=0.5)
    with dep.portal(f"127.0.0.1:{port}") as portal, pytest.raises(CallError) as err:
        for _ in portal.watch():
            pass
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED

    async def main() -> None:
        async with dep.aio_portal(f"127.0.0.1:{port}") as portal:
            with pytest.raises(CallError) as err:
                async for _ in portal.watch():
                    pass
            assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED

    asyncio.run(main())


@pytest.mark.parametrize("targets", [
    ["localhost:{p}", "localhost:{p}"],          # host names, twice
    ["127.0.0.1:{p}", "127.0.0.1:{p}"],          # IPv4 literals
    ["[::1]:{p}", "[::1]:{p}"],                  # IPv6 literals
    ["[::1]:{p}"],
    ["dns:///localhost:{p}"],                    # every address of a name, round-robin
])
def test_targets(deployment_dir: Path, port: int, number: str, targets: list[str]) -> None:
    given = [t.format(p=port) for t in targets]
    with Deployment(deployment_dir).agency("city-chiyoda", given) as agency:
        assert agency.issue(number).symbol


def test_resolve_target_forms() -> None:
    assert resolve_target(["127.0.0.1:1", "127.0.0.2:2"]) == ("ipv4:127.0.0.1:1,127.0.0.2:2",
                                                              None)
    assert resolve_target(["[::1]:1", "[::1]:2"]) == ("ipv6:[::1]:1,[::1]:2", "::1")
    assert resolve_target("dns:///sym.example.org:443") == ("dns:///sym.example.org:443", None)
    with pytest.raises(ValueError):
        resolve_target(["no-port"])


def test_tls_server_name(deployment_dir: Path, port: int, number: str) -> None:
    good = Deployment(deployment_dir, server_name="localhost")
    with good.agency("city-chiyoda", f"127.0.0.1:{port}") as agency:
        assert agency.issue(number).symbol
    bad = Deployment(deployment_dir, server_name="not-the-server.example", timeout=3)
    with bad.agency("city-chiyoda", f"127.0.0.1:{port}") as agency, \
            pytest.raises(CallError) as err:
        agency.issue(number)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
