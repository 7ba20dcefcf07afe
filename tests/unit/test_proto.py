"""The API definition: generated code matches the .proto files, buf lint is clean, and the
names CONTRACT §3 and §9 fix are present with the right shapes."""

from __future__ import annotations

import filecmp
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "symbolsvc" / "v1"
BUF_HINT = ("buf is not on PATH; install it with `npm install -g @bufbuild/buf` "
            "(set SYMBOLSVC_REQUIRE_BUF=1 to make this a failure)")


def _committed() -> set[str]:
    return {p.name for p in GENERATED.iterdir()
            if p.suffix in (".py", ".pyi") and p.name != "__init__.py"}


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    # scripts/gen-proto runs `$PYTHON -m grpc_tools.protoc`: this interpreter, the test
    # venv's (a symlink to it elsewhere would lose the venv's pyvenv.cfg and site-packages)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "scripts" / "gen-proto"), str(out)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"scripts/gen-proto failed:\n{proc.stdout}\n{proc.stderr}"
    fresh_dir = out / "symbolsvc" / "v1"
    fresh = {p.name for p in fresh_dir.iterdir()}
    committed = _committed()
    assert fresh, "scripts/gen-proto produced nothing"
    assert fresh == committed, (
        f"generated files differ: missing from the tree {sorted(fresh - committed)}, "
        f"stale in the tree {sorted(committed - fresh)}; run scripts/gen-proto")
    _, mismatch, errors = filecmp.cmpfiles(fresh_dir, GENERATED, sorted(fresh), shallow=False)
    if mismatch or errors:
        from importlib.metadata import version as dist_version

        version = dist_version("grpcio-tools")
        pytest.fail(
            f"symbolsvc/v1 is out of date with proto/ for {sorted(mismatch + errors)}: run "
            f"scripts/gen-proto and commit the result (grpcio-tools here: {version}; "
            "pyproject.toml pins the version the committed code was made with)")


def test_buf_lint() -> None:
    buf = shutil.which("buf")
    if buf is None:
        if os.environ.get("SYMBOLSVC_REQUIRE_BUF") == "1":
            pytest.fail(BUF_HINT)
        pytest.skip(BUF_HINT)
    assert (ROOT / "buf.yaml").is_file()
    proc = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, f"buf lint:\n{proc.stdout}\n{proc.stderr}"


# -- fixed names (CONTRACT §3, §9) ------------------------------------------------------------

MODULES = ["symbol_service", "broker_service", "disclosure_service", "audit_service", "common"]
# service -> {rpc: (client streaming, server streaming)}
SERVICES = {
    "SymbolService": {"IssueSymbol": (False, False), "BatchIssueSymbols": (False, False),
                      "StreamIssueSymbols": (True, True), "ReleaseSymbol": (False, False)},
    "BrokerService": {"TranslateSymbol": (False, False), "BatchTranslateSymbols": (False, False),
                      "ResolveProviders": (False, False)},
    "DisclosureService": {"ListAccessRecords": (False, False),
                          "WatchAccessRecords": (False, True),
                          "GetRecordProof": (False, False)},
    "AuditService": {"GetCheckpoint": (False, False), "GetConsistencyProof": (False, False),
                     "GetInclusionProof": (False, False), "ListEntries": (False, False)},
}
S, B, U64, I64, BOOL = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES,
                        FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_INT64,
                        FieldDescriptor.TYPE_BOOL)
INTS = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_INT32}
# message -> {field: allowed types, repeated?}
FIELDS: dict[str, dict[str, tuple[set[int], bool]]] = {
    "IssueSymbolRequest": {"individual_number": ({S}, False)},
    "IssueSymbolResponse": {"symbol": ({S}, False), "newly_registered": ({BOOL}, False)},
    "TranslateSymbolRequest": {f: ({S}, False) for f in (
        "requester_agency", "symbol", "provider_agency", "office_work", "info_item",
        "exchange_id")},
    "TranslateSymbolResponse": {"provider_symbol": ({S}, False)},
    "ResolveProvidersRequest": {f: ({S}, False) for f in (
        "requester_agency", "symbol", "office_work", "info_item")},
    "ResolveProvidersResponse": {"provider_agencies": ({S}, True)},
    "GetCheckpointResponse": {"checkpoint": ({S}, False)},
    "ListEntriesRequest": {"start": (INTS, False), "end": (INTS, False)},
    "GetInclusionProofRequest": {"leaf_index": (INTS, False), "tree_size": (INTS, False)},
    "GetInclusionProofResponse": {"hashes": ({B}, True)},
    "GetConsistencyProofRequest": {"first_size": (INTS, False), "second_size": (INTS, False)},
    "GetConsistencyProofResponse": {"hashes": ({B}, True)},
}


def _repeated(f: FieldDescriptor) -> bool:
    if hasattr(f, "is_repeated"):  # protobuf >= 6 (label was removed in 7)
        return bool(f.is_repeated)
    return bool(f.label == FieldDescriptor.LABEL_REPEATED)


@pytest.fixture(scope="module")
def pool() -> descriptor_pool.DescriptorPool:
    for m in MODULES:
        importlib.import_module(f"symbolsvc.v1.{m}_pb2")
        importlib.import_module(f"symbolsvc.v1.{m}_pb2_grpc")
    return descriptor_pool.Default()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_services_and_rpcs(pool: descriptor_pool.DescriptorPool, service: str) -> None:
    svc = pool.FindServiceByName(f"symbolsvc.v1.{service}")
    methods = {m.name: m for m in svc.methods}
    assert set(methods) >= set(SERVICES[service]), f"{service} lacks RPCs"
    for name, (client_streaming, server_streaming) in SERVICES[service].items():
        m = methods[name]
        assert (m.client_streaming, m.server_streaming) == (client_streaming, server_streaming), (
            f"{service}.{name} streaming shape")


@pytest.mark.parametrize("message", sorted(FIELDS))
def test_fixed_fields(pool: descriptor_pool.DescriptorPool, message: str) -> None:
    desc = pool.FindMessageTypeByName(f"symbolsvc.v1.{message}")
    for field, (types, repeated) in FIELDS[message].items():
        assert field in desc.fields_by_name, f"{message}.{field} missing"
        f = desc.fields_by_name[field]
        assert f.type in types, f"{message}.{field} has type {f.type}"
        is_repeated = _repeated(f)
        assert is_repeated is repeated, f"{message}.{field} repeated={is_repeated}"


def test_list_entries_response_shape(pool: descriptor_pool.DescriptorPool) -> None:
    resp = pool.FindMessageTypeByName("symbolsvc.v1.ListEntriesResponse")
    entries = resp.fields_by_name["entries"]
    assert _repeated(entries)
    entry = entries.message_type
    assert entry.fields_by_name["index"].type in INTS
    assert entry.fields_by_name["leaf"].type == B
