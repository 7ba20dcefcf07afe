"""``audit verify`` and trust on first use (issue 10 item 9): without a state file it says
loudly that it checked only internal consistency; ``--require-state`` refuses to run
without one. On a log database built as test_audit_verify builds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_audit_verify import ORIGIN, build, verify

from symbolsvc.log.checkpoint import vkey_string


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    vkey = tmp_path / "log.vkey"
    vkey.write_text(vkey_string(ORIGIN, key.public_key()) + "\n")
    db = tmp_path / "registry.db"
    build(db, key, (10, 20)).close()
    return db, vkey


def test_without_state_warns_loudly(files: tuple[Path, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = verify(*files, capsys=capsys)
    assert rc == 0 and "20 leaves" in out
    assert "WARNING: trust on first use" in err and "only the log's internal consistency" in err


def test_first_state_run_warns_then_later_runs_do_not(
        files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state.json")
    rc, _, err = verify(*files, "--state", state, capsys=capsys)
    assert rc == 0 and "trust on first use" in err
    rc, _, err = verify(*files, "--state", state, "--require-state", capsys=capsys)
    assert rc == 0 and "trust on first use" not in err


@pytest.mark.parametrize("extra", [(), ("--state", "absent.json")])
def test_require_state_fails_without_one(files: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         extra: tuple[str, ...]) -> None:
    args = [str(tmp_path / a) if a.endswith(".json") else a for a in extra]
    rc, out, err = verify(*files, *args, "--require-state", capsys=capsys)
    assert rc == 2 and out == ""
    assert "--require-state" in err and "only internal consistency" in err
    assert not (tmp_path / "absent.json").exists()
