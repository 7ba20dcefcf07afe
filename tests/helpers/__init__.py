"""Shared test code, one module per concern; everything is re-exported here, so
``from helpers import X`` works in every test directory (tests/conftest.py puts tests/ on
the import path).

* ``helpers.numbers`` — valid individual numbers, made independently of the code under test
* ``helpers.waiting`` — :func:`wait_until`: polling against a deadline, never a bare sleep
* ``helpers.deployments`` — deployments from the real ``symbolsvc init``, copies,
  configuration variants, a registry of their own on either backend
* ``helpers.server`` — :class:`ServerProcess`: one real ``symbolsvc serve`` process
* ``helpers.clients`` — :class:`Clients` per principal, :func:`call_error`
* ``helpers.registry`` — a deployment's registry read from outside, on either backend
* ``helpers.load`` — :class:`BulkLoad`: open-ended bulk issuance against a server
* ``helpers.postgres`` — throwaway PostgreSQL databases, private clusters, replicas
* ``helpers.notes`` — an independent C2SP signed-note verifier
* ``helpers.memory_tree`` — an in-memory RFC 9162 tree to check the log against

Nothing here mocks anything. The modules ``postgres_fixtures`` and ``memory_tree`` of older
tests are ``helpers.postgres`` and ``helpers.memory_tree``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import memory_tree, postgres
from .clients import Clients, call_error
from .deployments import (
    AGENCIES,
    MUNICIPALITIES,
    TEST_POLICY,
    Registries,
    config_with,
    copy_deployment,
    dump_toml,
    init_deployment_cli,
    set_storage_url,
    storage_url,
)
from .load import BulkLoad, assert_still_issued, chunked
from .numbers import (
    NumberSource,
    ascii_digits,
    make_number,
    number_for,
    prefixes,
    reference_check_digit,
    reference_remainder,
    valid_numbers,
    wrong_check_digit,
)
from .registry import (
    RegistryReader,
    RegistrySnapshot,
    call_rows,
    open_readonly,
    registry_backend,
    registry_bytes,
    registry_dump,
    registry_path,
    row_counts,
)
from .server import READY_RE, SERVING, ServerProcess, StartServer
from .waiting import wait_until

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
"""Published and computed test vectors, as data (tests/vectors/)."""

# The old top-level names of helpers.postgres and helpers.memory_tree, for tests written
# against them.
sys.modules.setdefault("postgres_fixtures", postgres)
sys.modules.setdefault("memory_tree", memory_tree)

__all__ = [
    "AGENCIES",
    "MUNICIPALITIES",
    "READY_RE",
    "SERVING",
    "TEST_POLICY",
    "VECTORS",
    "BulkLoad",
    "Clients",
    "NumberSource",
    "Registries",
    "RegistryReader",
    "RegistrySnapshot",
    "ServerProcess",
    "StartServer",
    "ascii_digits",
    "assert_still_issued",
    "call_error",
    "call_rows",
    "chunked",
    "config_with",
    "copy_deployment",
    "dump_toml",
    "init_deployment_cli",
    "make_number",
    "number_for",
    "open_readonly",
    "prefixes",
    "reference_check_digit",
    "reference_remainder",
    "registry_backend",
    "registry_bytes",
    "registry_dump",
    "registry_path",
    "row_counts",
    "set_storage_url",
    "storage_url",
    "valid_numbers",
    "wait_until",
    "wrong_check_digit",
]
