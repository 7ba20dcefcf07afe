"""The ``symbolsvc`` command: init a deployment, serve it, check a permission table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import keyadmin
from .admin.commands import register as register_admin
from .admin.witness import register as register_witness
from .config import DEFAULT_LISTEN, load_config
from .errors import ConfigError
from .hostlimits import restrict_umask
from .portal.cli import register as register_portal

if TYPE_CHECKING:
    from . import verify
    from .inquiry import VerifyKey


def _init(args: argparse.Namespace) -> int:
    from .deploy import init_deployment

    config = init_deployment(Path(args.dir), args.agency, listen=args.listen)
    d = config.parent
    print(f"wrote a deployment to {d}/ (config.toml, policy.toml, pki/, keys/, secrets/)")
    print(f"serve it with:  symbolsvc serve --config {config}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .metrics_http import ensure_multiprocess_dir

    ensure_multiprocess_dir()  # before prometheus-client is imported (metrics_http)
    config = load_config(Path(args.config))
    if args.workers > 1:
        from .workers import serve_workers

        return serve_workers(config, args.listen or config.listen, args.workers)
    import asyncio

    from .server import run

    try:
        asyncio.run(run(config, args.listen))
    except ConfigError as exc:
        print(f"symbolsvc: {exc}", file=sys.stderr)
        return 2
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from .config import agencies_without_principal
    from .policy import DEFAULT_MAX_WITHHOLD_DAYS, Policy

    config_path = Path(args.config) if args.config else Path(args.file).parent / "config.toml"
    config = load_config(config_path) if args.config or config_path.exists() else None
    table = Policy.load(Path(args.file), max_withhold_days=(
        config.max_withhold_days if config is not None else DEFAULT_MAX_WITHHOLD_DAYS))
    if config is not None:
        unknown = agencies_without_principal(table, config)
        if unknown:
            level = "error" if args.strict else "warning"
            print(f"symbolsvc: {level}: {args.file}: agency IDs no principal of {config_path} "
                  f"has: {', '.join(unknown)}", file=sys.stderr)
            if args.strict:
                return 2
    elif args.strict:
        raise ConfigError(f"--strict needs the deployment's config.toml (--config); "
                          f"{config_path} does not exist")
    print(f"{args.file}: OK, {table.rules} rules, {len(table.providers)} "
          f"(requester, office work, info item) entries, version {table.version.hex()}")
    return 0


def _db(args: argparse.Namespace) -> int:
    from . import db

    config = load_config(Path(args.config))
    if args.db_command == "create":
        print(db.create(config))
        return 0
    if args.db_command == "migrate":
        status, applied = db.migrate(config)
        for m in applied:
            print(f"{status.where}: applied {m.version:04d}_{m.name}")
    else:
        status = db.check(config)
    print(f"{status.where}: {status.message}")
    return 0 if status.ok else 1


def _audit_verify(args: argparse.Namespace) -> int:
    """``symbolsvc audit verify``: 0 verified, 1 failed verification, 2 could not verify."""
    from . import verify

    try:
        report = _audit_run(args)
    except verify.AuditFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except verify.AuditError as exc:
        print(f"symbolsvc audit verify: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.previous is None:
        print(_TOFU_WARNING, file=sys.stderr)
    return 0


def _agency_keys(directory: str | Path | None) -> dict[str, list[VerifyKey]] | None:
    """The agencies' certificate keys for checking signed inquiries (None: not checked)."""
    from .inquiry import agency_keys

    if directory is None:
        return None
    if not Path(directory).is_dir():
        from .verify import AuditError

        raise AuditError(f"--agency-certs {directory}: not a directory")
    return agency_keys(Path(directory))


_TOFU_WARNING = (
    "WARNING: trust on first use. No earlier verified checkpoint (no state file, or its "
    "first run): this run checked only the log's internal consistency. A log truncated, "
    "rolled back or rewritten since an earlier check would pass. Keep a state file "
    "(--state FILE) between runs, and pass --require-state once it exists.")


def _audit_run(args: argparse.Namespace) -> verify.AuditReport:
    from . import verify

    if args.require_state and not (args.state and Path(args.state).exists()):
        raise verify.AuditError(
            "--require-state: no state file to verify against "
            f"({'--state not given' if not args.state else args.state + ' does not exist'}); "
            "without it only internal consistency can be checked")

    witnesses = verify.WitnessPolicy.load(args.witness_vkey, args.witness_quorum)
    if args.db:
        if not args.vkey:
            raise verify.AuditError("--db needs --vkey FILE (the deployment's pki/log.vkey)")
        vkey = verify.load_vkey(args.vkey)
        previous = verify.load_state(args.state, vkey) if args.state else None
        report = verify.verify_database(args.db, vkey, origin=args.origin, previous=previous,
                                        witnesses=witnesses,
                                        agency_keys=_agency_keys(args.agency_certs))
    else:
        from symbolsvc_client.channel import Deployment

        deployment = Deployment(args.deployment)
        vkey = verify.load_vkey(args.vkey or deployment.pki / "log.vkey")
        previous = verify.load_state(args.state, vkey) if args.state else None
        try:
            client = deployment.auditor(args.target, name=args.principal)
        except OSError as exc:
            raise verify.AuditError(f"cannot load the {args.principal} identity: {exc}") from None
        with client:
            report = verify.verify_remote(
                client, vkey, origin=args.origin, previous=previous, source=args.target,
                witnesses=witnesses, agency_keys=_agency_keys(args.agency_certs or deployment.pki))
    if args.state:
        try:
            verify.save_state(args.state, report.state)
        except OSError as exc:
            raise verify.AuditError(f"verified, but cannot write the state file: {exc}") from None
    return report


def _audit_receipts(args: argparse.Namespace) -> int:
    """``symbolsvc audit receipts``: 0 every receipt included, 1 any missing or invalid,
    2 could not check."""
    from symbolsvc_client.channel import Deployment

    from . import verify
    from .verify.receipts import check_receipts

    try:
        deployment = Deployment(args.deployment)
        keys = verify.load_vkey(args.vkey or deployment.pki / "log.vkey")
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise verify.AuditError(f"cannot read {args.file}: {exc}") from None
        try:
            client = deployment.auditor(args.target, name=args.principal)
        except OSError as exc:
            raise verify.AuditError(f"cannot load the {args.principal} identity: {exc}") from None
        with client:
            report = check_receipts(client, keys, text, origin=args.origin)
    except verify.AuditFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except verify.AuditError as exc:
        print(f"symbolsvc audit receipts: {exc}", file=sys.stderr)
        return 2
    for line in report.problems:
        print(line)
    if not report.ok:
        print(f"FAILED: {len(report.problems)} of {report.total} receipt(s) not included in "
              f"log {report.origin} (size {report.tree_size})", file=sys.stderr)
        return 1
    print(f"OK: all {report.total} receipt(s) included in log {report.origin} "
          f"(size {report.tree_size})")
    return 0


def _probe(args: argparse.Namespace) -> int:
    from .probe import probe

    return probe(args.address, args.service, args.timeout, args.alive)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("symbolsvc")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symbolsvc",
        description="Per-agency symbols for individual numbers, brokered translation and a "
        "tamper-evident access log.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a ready-to-serve deployment directory")
    p.add_argument("dir", help="the deployment directory to create")
    p.add_argument("--agency", action="append", default=[], metavar="ID",
                   help="an agency to create a certificate for (repeatable; default: a "
                        "sample set of four)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help="the address config.toml names")
    p.set_defaults(func=_init)

    p = sub.add_parser("serve", help="serve a deployment")
    p.add_argument("--config", required=True, help="the deployment's config.toml")
    p.add_argument("--listen", help=f"HOST:PORT (default: config, else {DEFAULT_LISTEN}); "
                                    "port 0 picks a free port")
    p.add_argument("--workers", type=_positive, default=1, metavar="N",
                   help="serve with N processes on one port (SO_REUSEPORT), sharing the "
                        "registry (default 1)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("probe", help="check health on the plaintext loopback health port "
                                     "(container and kubelet probes); exit 0 when SERVING")
    p.add_argument("--address", default="127.0.0.1:50052",
                   help="the [server] health_listen address (default 127.0.0.1:50052)")
    p.add_argument("--service", default="", help="a service name (default: the server)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS")
    p.add_argument("--alive", action="store_true",
                   help="exit 0 on any answer (liveness: NOT_SERVING while the database is "
                        "down is still alive)")
    p.set_defaults(func=_probe)

    p = sub.add_parser("db", help="create, migrate or check the registry database")
    dsub = p.add_subparsers(dest="db_command", required=True)
    for name, text in (("create", "create the database [storage] url names, if absent"),
                       ("migrate", "apply pending schema migrations"),
                       ("check", "report the schema version; exit 1 unless it is current")):
        dc = dsub.add_parser(name, help=text)
        dc.add_argument("--config", required=True, help="the deployment's config.toml")
        dc.set_defaults(func=_db)

    p = sub.add_parser("policy", help="permission-table tools")
    psub = p.add_subparsers(dest="policy_command", required=True)
    pc = psub.add_parser("check", help="validate a policy.toml")
    pc.add_argument("file")
    pc.add_argument("--config", help="the deployment's config.toml, whose principals the "
                                     "table's agency IDs must name (default: beside FILE)")
    pc.add_argument("--strict", action="store_true",
                    help="an agency ID no principal has is an error, not a warning")
    pc.set_defaults(func=_policy_check)

    p = sub.add_parser("audit", help="independent verification of the access log")
    asub = p.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser(
        "verify", help="recompute the log's tree and check every checkpoint; exit 1 naming "
                       "the first bad entry (docs/ACCESS_LOG.md, Verification)")
    src = av.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", metavar="PATH",
                     help="a COPY of the SQLite database (opened read-only)")
    src.add_argument("--deployment", metavar="DIR",
                     help="verify over gRPC with DIR's pki/ (auditor identity, log.vkey)")
    av.add_argument("--target", default="127.0.0.1:50051", metavar="HOST:PORT",
                    help="the server, with --deployment (default 127.0.0.1:50051)")
    av.add_argument("--as", dest="principal", default="auditor", metavar="NAME",
                    help="the principal whose certificate to use (default auditor)")
    av.add_argument("--vkey", metavar="FILE",
                    help="the log's verifier key (required with --db; default "
                         "DIR/pki/log.vkey)")
    av.add_argument("--origin", help="the log origin expected (default: the vkey's name)")
    av.add_argument("--agency-certs", metavar="DIR",
                    help="the agencies' certificates (a deployment's pki/, with retired/): "
                         "check every signed inquiry the records keep (default with "
                         "--deployment: DIR/pki; without: signatures are counted unchecked)")
    av.add_argument("--state", metavar="FILE",
                    help="the last verified checkpoint: checked against, updated on success")
    av.add_argument("--witness-vkey", action="append", default=[], metavar="VKEY_OR_FILE",
                    help="a trusted witness's cosignature vkey (0x04 type; repeatable): the "
                         "checkpoint verified must carry the quorum of their cosignatures")
    av.add_argument("--witness-quorum", type=_positive, metavar="K",
                    help="how many of the --witness-vkey witnesses must have cosigned "
                         "(default: all)")
    av.add_argument("--require-state", action="store_true",
                    help="fail (exit 2) unless --state names an existing state file: refuse "
                         "to trust the log on first use")
    av.set_defaults(func=_audit_verify)
    ar = asub.add_parser(
        "receipts", help="check that every receipt in FILE (signed notes separated by blank "
                         "lines) is included in the log; exit 1 naming each missing one "
                         "(docs/ACCESS_LOG.md, Receipts)")
    ar.add_argument("file", metavar="FILE", help="the receipts a broker kept")
    ar.add_argument("--deployment", metavar="DIR", required=True,
                    help="DIR's pki/ gives the auditor identity and log.vkey")
    ar.add_argument("--target", default="127.0.0.1:50051", metavar="HOST:PORT",
                    help="the server (default 127.0.0.1:50051)")
    ar.add_argument("--as", dest="principal", default="auditor", metavar="NAME",
                    help="the principal whose certificate to use (default auditor)")
    ar.add_argument("--vkey", metavar="FILE", help="the log's verifier keys (default "
                                                   "DIR/pki/log.vkey)")
    ar.add_argument("--origin", help="the log origin expected (default: the vkey's name)")
    ar.set_defaults(func=_audit_receipts)
    register_admin(sub)
    register_witness(sub)
    register_portal(sub)

    keyadmin.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    restrict_umask()  # data, logs and secrets 0600, directories 0700 (docs/ISOLATION.md)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"symbolsvc: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
