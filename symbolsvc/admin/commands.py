"""The day-2 subcommands of ``symbolsvc`` (agency, principal, cert, backup, restore);
:func:`register` adds them to the main parser, the logic lives in this package."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_config
from ..sealing import DEFAULT_SUITE, SUITE_IDS

SUITES = tuple(SUITE_IDS)

SIGHUP_HINT = ("a running server takes it up on SIGHUP (kill -HUP <pid>); nothing restarts "
               "and no symbol changes")


def _agency_add(args: argparse.Namespace) -> int:
    from .principals import agency_add

    for issued in agency_add(Path(args.config), args.ids, args.hpke_suite):
        print(f"added agency {issued.name} ({issued.identity}): {issued.cert}, {issued.key}, "
              f"HPKE key pair {issued.name}.hpke.key/.hpke.pub ({args.hpke_suite})")
    print(f"give it rules in the permission table; {SIGHUP_HINT}")
    return 0


def _agency_hpke_key(args: argparse.Namespace) -> int:
    from .principals import agency_hpke_key

    path = agency_hpke_key(Path(args.config), args.id, suite=args.suite,
                           public=Path(args.public) if args.public else None)
    print(f"registered agency {args.id}'s HPKE public key {path}; blind translations seal to "
          "it from the next call on (no SIGHUP needed)")
    return 0


def _agency_remove(args: argparse.Namespace) -> int:
    from .principals import agency_remove

    released = agency_remove(Path(args.config), args.id, release_all=args.release_all)
    print(f"removed agency {args.id} (released {released} holdings; its certificate is "
          f"revoked); remove it from the permission table; {SIGHUP_HINT}")
    return 0


def _principal_add(args: argparse.Namespace) -> int:
    from .principals import principal_add

    issued = principal_add(Path(args.config), args.role, args.name)
    print(f"added {args.role} {issued.name} ({issued.identity}): {issued.cert}, {issued.key}")
    print(SIGHUP_HINT)
    return 0


def _cert_reissue(args: argparse.Namespace) -> int:
    from .principals import cert_reissue

    issued, entries = cert_reissue(Path(args.config), args.name)
    print(f"reissued {issued.name}: new key and certificate in {issued.cert}, {issued.key}; "
          f"the old certificate is revoked ({entries[0]}, {entries[1]})")
    print("send SIGHUP to the server (kill -HUP <pid>) for the revocation to take effect"
          + ("; restart it to serve the new server certificate" if args.name == "server"
             else ""))
    return 0


def _cert_revoke(args: argparse.Namespace) -> int:
    from .principals import cert_revoke

    entries = cert_revoke(Path(args.config), args.name)
    print(f"revoked the certificate of {args.name}: {entries[0]}, {entries[1]}")
    print("send SIGHUP to the server (kill -HUP <pid>) for the revocation to take effect")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from .backup import backup

    manifest = backup(load_config(Path(args.config)), Path(args.out))
    print(f"backed up to {args.out}: schema {manifest['schema_version']}, "
          f"{manifest['live_holdings']} live holdings, access log tree size "
          f"{manifest['tree_size']}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from .backup import restore

    manifest = restore(load_config(Path(args.config)), Path(args.src), replace=args.replace)
    print(f"restored {args.src} (taken {manifest['started_at']}; access log tree size "
          f"{manifest['tree_size']}); see OPERATIONS.md, Restore: a restore to before the "
          "last published checkpoint must be announced")
    return 0


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the deployment's config.toml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agency", help="add or remove agencies")
    asub = p.add_subparsers(dest="agency_command", required=True)
    a = asub.add_parser("add", help="issue a certificate for each new agency and add it to "
                                    "config.toml")
    _config_arg(a)
    a.add_argument("ids", nargs="+", metavar="ID")
    a.add_argument("--hpke-suite", choices=SUITES, default=DEFAULT_SUITE,
                   help="the HPKE suite of each agency's blind-translation key pair "
                        f"(default {DEFAULT_SUITE}: post-quantum hybrid)")
    a.set_defaults(func=_agency_add)
    a = asub.add_parser("hpke-key", help="replace an agency's HPKE public key (blind "
                                         "translation): a new pair, or the agency's own")
    _config_arg(a)
    a.add_argument("id", metavar="ID")
    a.add_argument("--suite", choices=SUITES, default=DEFAULT_SUITE,
                   help="the suite of a new pair the deployment makes")
    a.add_argument("--public", metavar="FILE",
                   help="register this public key (a 'symbolsvc-hpke-v1 SUITE BASE64' line "
                        "the agency made) instead; no private key stays in pki/")
    a.set_defaults(func=_agency_hpke_key)
    a = asub.add_parser("remove", help="remove an agency (refused while it holds symbols)")
    _config_arg(a)
    a.add_argument("id", metavar="ID")
    a.add_argument("--release-all", action="store_true",
                   help="end every holding of the agency first")
    a.set_defaults(func=_agency_remove)

    p = sub.add_parser("principal", help="add a broker, portal or auditor")
    psub = p.add_subparsers(dest="principal_command", required=True)
    a = psub.add_parser("add", help="issue a certificate and add the principal")
    _config_arg(a)
    a.add_argument("--role", required=True, choices=("broker", "portal", "auditor"))
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=_principal_add)

    p = sub.add_parser("cert", help="reissue or revoke a principal's certificate")
    csub = p.add_subparsers(dest="cert_command", required=True)
    a = csub.add_parser("reissue", help="new key and certificate, same identity; the old "
                                        "one is revoked")
    _config_arg(a)
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=_cert_reissue)
    a = csub.add_parser("revoke", help="put the current certificate on the revocation list")
    _config_arg(a)
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=_cert_revoke)

    p = sub.add_parser("backup", help="a consistent copy of the registry, while serving")
    _config_arg(p)
    p.add_argument("out", metavar="OUT", help="a new (or empty) directory")
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", help="restore a backup into a stopped deployment")
    _config_arg(p)
    p.add_argument("src", metavar="FROM", help="a directory written by symbolsvc backup")
    p.add_argument("--replace", action="store_true",
                   help="replace existing data (SQLite: kept aside as *.before-restore-*)")
    p.set_defaults(func=_restore)
