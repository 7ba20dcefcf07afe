"""Durability (CONTRACT §4 Issue): kill -9 in the middle of bulk issuance loses nothing
acknowledged. A bidirectional stream and concurrent batches run against a real server on
each registry backend; the server is killed with SIGKILL while they are in flight, restarted on
the same deployment, and every symbol a client had an acknowledgement for must still be
registered, unchanged, and reachable by translation."""

from __future__ import annotations

from pathlib import Path

from helpers import (
    BulkLoad,
    NumberSource,
    RegistryReader,
    StartServer,
    assert_still_issued,
    wait_until,
)
from helpers.backends import per_backend
from symbolsvc_client import Deployment

from symbolsvc.v1 import broker_service_pb2 as broker_pb

SAMPLE = 300  # acknowledged numbers also held by tax-office, to translate after restart


def test_kill9_during_bulk_issuance_loses_no_acknowledged_symbol(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server = start_server(fresh_deployment)
    dep = Deployment(fresh_deployment)
    stream_numbers = numbers.many(SAMPLE)

    # tax-office holds the first numbers of the stream, so that translations tax-office ->
    # city-chiyoda (tax-investigation / resident-record) can reach the bulk-issued symbols.
    with dep.agency("tax-office", server.address) as tax:
        tax_symbols = {r_n: r.issued.symbol for r_n, r in zip(
            stream_numbers[:SAMPLE], tax.issue_batch(stream_numbers[:SAMPLE]), strict=True)}

    # The load is open-ended (the stream starts with the sample): the kill lands in its
    # middle by construction, however fast the machine is.
    load = BulkLoad(dep, server.address, numbers, stream_agency="city-chiyoda",
                    stream_prefix=stream_numbers, batch_agency="city-minato",
                    batch_threads=3).start()
    wait_until(lambda: load.count("city-chiyoda") >= 4000 and load.count("city-minato") >= 1500,
               60, "a few thousand acknowledged issues")
    server.kill()
    load.join(60)
    acked = load.snapshot()

    assert not load.stream_finished, "the kill did not land in the middle of the load"
    assert "stream" in {kind for kind, _ in load.errors} and not load.item_errors
    assert set(stream_numbers[:SAMPLE]) <= set(acked["city-chiyoda"])  # the sample was acked

    server.restart()
    # The storage survived the kill intact (a SQLite file's integrity check; PostgreSQL's
    # own crash recovery is not the service's to check).
    per_backend(fresh_deployment).check_intact(fresh_deployment)
    with RegistryReader(fresh_deployment) as db:
        held = dict(db.query("SELECT agency, COUNT(*) FROM holdings WHERE NOT released "
                             "GROUP BY agency"))
    assert held["city-chiyoda"] >= len(acked["city-chiyoda"])
    assert held["city-minato"] >= len(acked["city-minato"])

    with dep.agency("city-chiyoda", server.address) as chiyoda:
        assert_still_issued(chiyoda, acked["city-chiyoda"])
    with dep.agency("city-minato", server.address) as minato:
        assert_still_issued(minato, acked["city-minato"])

    with dep.broker(server.address) as broker:
        results = broker.translate_batch([broker_pb.TranslateSymbolRequest(
            requester_agency="tax-office", symbol=tax_symbols[n], provider_agency="city-chiyoda",
            office_work="tax-investigation", info_item="resident-record", exchange_id=f"c-{i}")
            for i, n in enumerate(stream_numbers[:SAMPLE])])
    assert [r.translated.provider_symbol for r in results] == \
        [acked["city-chiyoda"][n] for n in stream_numbers[:SAMPLE]]
