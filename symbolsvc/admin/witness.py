"""``symbolsvc witness init | serve``: set up and run an independent witness
(docs/WITNESS.md). The witness's own logic lives in :mod:`symbolsvc.witness`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ConfigError
from ..log.checkpoint import NoteError, parse_vkey, signer_key_string
from ..log.cosignature import witness_vkey_string


def _read_vkey(text: str) -> str:
    """A vkey given inline or as a file holding it."""
    path = Path(text)
    return path.read_text(encoding="ascii").strip() if path.is_file() else text.strip()


def witness_init(directory: Path, name: str, log_vkeys: list[str], listen: str) -> str:
    """Write witness.toml, witness.key (0600), witness.vkey and the state db; return the
    witness's vkey (0x04-typed, for the log's operator and the auditors)."""
    vkeys = [_read_vkey(v) for v in log_vkeys]
    try:
        origins = {parse_vkey(v).name for v in vkeys}
    except NoteError as exc:
        raise ConfigError(f"--log-vkey: {exc}") from None
    private_key = Ed25519PrivateKey.generate()
    wvkey = witness_vkey_string(name, private_key.public_key())
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "witness.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(signer_key_string(name, private_key) + "\n")
    (directory / "witness.vkey").write_text(wvkey + "\n", encoding="ascii")
    os.chmod(directory / "witness.vkey", 0o644)
    logs = ""
    for origin in sorted(origins):
        mine = ", ".join(f'"{v}"' for v in vkeys if parse_vkey(v).name == origin)
        logs += f'\n[[log]]\norigin = "{origin}"\nvkeys = [{mine}]\n'
    (directory / "witness.toml").write_text(
        f'# symbolsvc witness configuration (docs/WITNESS.md)\nname = "{name}"\n'
        f'key = "witness.key"\nstate = "witness.db"\nlisten = "{listen}"\n' + logs,
        encoding="utf-8")
    from ..witness.state import WitnessState

    WitnessState(directory / "witness.db")
    return wvkey


def _init(args: argparse.Namespace) -> int:
    wvkey = witness_init(Path(args.dir), args.name, args.log_vkey, args.listen)
    print(f"witness {args.name} written to {args.dir}; its verifier key (give it to the log's "
          f"operator and the auditors):\n{wvkey}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ..logsetup import setup_logging
    from ..witness.app import serve
    from ..witness.config import load_witness_config

    setup_logging(None, fmt="text")
    serve(load_witness_config(Path(args.config)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("witness", help="an independent witness that cosigns the access "
                                       "log's checkpoints (C2SP tlog-witness)")
    wsub = p.add_subparsers(dest="witness_command", required=True)
    a = wsub.add_parser("init", help="make a witness directory: witness.toml, its Ed25519 "
                                     "key (0600), its vkey and its state database")
    a.add_argument("dir", help="the witness directory to create")
    a.add_argument("--name", required=True, help="the witness name, a schema-less URL "
                                                 "such as witness.example/w1")
    a.add_argument("--log-vkey", action="append", required=True, metavar="VKEY_OR_FILE",
                   help="a trusted log's note vkey (e.g. a deployment's pki/log.vkey); "
                        "repeatable")
    a.add_argument("--listen", default="127.0.0.1:8710", metavar="HOST:PORT")
    a.set_defaults(func=_init)
    a = wsub.add_parser("serve", help="serve POST /add-checkpoint until SIGTERM")
    a.add_argument("--config", required=True, help="the witness's witness.toml")
    a.set_defaults(func=_serve)
