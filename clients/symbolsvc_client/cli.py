"""``symbolctl``: a command-line client for the common calls and for bulk loads.

    symbolctl --deployment dev --as city-chiyoda issue 123456789018
    symbolctl --deployment dev --as city-chiyoda issue --input numbers.txt \\
        --output out.jsonl --resume load.state
    symbolctl --deployment dev --as city-chiyoda issue --csv --column number --input people.csv
    symbolctl --deployment dev translate --requester city-chiyoda --provider city-minato \\
        --office-work demo-exchange --info-item demo-record --input symbols.txt
    symbolctl --deployment dev --as city-chiyoda release --input symbols.txt

The server is ``--target`` (repeatable, or a ``dns:///name:port``), else
``$SYMBOLSVC_TARGET``, else the address the deployment's ``config.toml`` listens on.

Bulk commands (issue, translate with ``--input``, release with ``--input``) print one
JSON line per input line (docs in :mod:`.bulk`), a progress bar on a terminal, and a
summary on stderr. Numbers may be given as ``-`` (stdin), keeping them out of the shell
history. Exit status: 0 when every item succeeded, 1 when any failed (the first failures
and the summary go to stderr), 2 on a usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from . import __version__
from .bulk import Item, Operation, UsageError, open_input, read_items, run_bulk
from .bulk_ops import IssueOp, ReleaseOp, TranslateOp, UpgradeOp
from .channel import Deployment
from .errors import CallError
from .ids import new_id


def _out(msg: Message) -> None:
    print(MessageToJson(msg, indent=None, preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True))


def _items(args: argparse.Namespace, positional: list[str]) -> tuple[Iterator[Item], int | None]:
    source = args.input or ("-" if positional == ["-"] else None)
    if source is None:
        if not positional:
            raise UsageError(f"{args.command}: give values, '-' (stdin) or --input FILE")
        return iter([Item(n, v.strip()) for n, v in enumerate(positional, start=1)]), None
    stream, total = open_input(source)
    return read_items(stream, csv_mode=args.csv, column=args.column), total


def _bulk(op: Operation, args: argparse.Namespace, positional: list[str]) -> int:
    items, total = _items(args, positional)
    failures: list[str] = []
    summary = run_bulk(op, items,
                       output=Path(args.output) if args.output else None,
                       state_path=Path(args.resume) if args.resume else None,
                       total_lines=total, failures=failures)
    for line in failures[:5]:
        print(f"symbolctl: {line}", file=sys.stderr)
    if len(failures) > 5:
        print(f"symbolctl: ... and {len(failures) - 5} more failed lines", file=sys.stderr)
    if total is not None or args.input or positional == ["-"] or summary.failed:
        print(summary.text(op.name), file=sys.stderr)
    return 1 if summary.failed else 0


def run(args: argparse.Namespace) -> int:
    dep = Deployment(args.deployment, server_name=args.server_name, timeout=args.timeout)
    targets = args.target or ([os.environ["SYMBOLSVC_TARGET"]]
                              if os.environ.get("SYMBOLSVC_TARGET") else None)
    cmd = args.command
    if cmd == "health":
        from grpc_health.v1 import health_pb2

        status = dep.agency(args.as_, targets).health(args.service)
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    elif cmd == "issue":
        return _bulk(IssueOp(dep.agency(args.as_, targets)), args, args.numbers)
    elif cmd == "release":
        if args.input or args.symbols == ["-"] or len(args.symbols) != 1:
            return _bulk(ReleaseOp(dep.agency(args.as_, targets)), args, args.symbols)
        print("released" if dep.agency(args.as_, targets).release(args.symbols[0])
              else "already released")
    elif cmd == "upgrade":
        return _bulk(UpgradeOp(dep.agency(args.as_, targets)), args, args.symbols)
    elif cmd == "translate":
        broker = dep.broker(targets, args.as_)
        if args.symbol is None:
            return _bulk(TranslateOp(broker, args.requester, args.provider, args.office_work,
                                     args.info_item, args.exchange_id or "symbolctl"),
                         args, [])
        _out(broker.translate(args.requester, args.symbol, args.provider, args.office_work,
                              args.info_item, args.exchange_id or new_id()))
    elif cmd == "resolve":
        _out(dep.broker(targets, args.as_).resolve(
            args.requester, args.symbol, args.office_work, args.info_item,
            args.exchange_id or new_id()))
    elif cmd == "records":
        for record in dep.portal(targets, args.as_).all_records(args.symbol):
            _out(record)
    elif cmd == "checkpoint":
        print(dep.auditor(targets, args.as_).checkpoint(), end="")
    return 0


def _bulk_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bulk input and output")
    g.add_argument("--input", metavar="FILE", help="read values from FILE ('-': stdin), one "
                   "per line, or one CSV column with --csv")
    g.add_argument("--csv", action="store_true", help="the input is CSV")
    g.add_argument("--column", metavar="NAME|N", help="the CSV column: a header name, or a "
                   "1-based index (then there is no header row); default: the first header")
    g.add_argument("--output", metavar="FILE", help="write the JSON lines to FILE instead of "
                   "stdout (replaced; with --resume, continued: exactly one line per input "
                   "line across runs)")
    g.add_argument("--resume", metavar="STATE", help="keep progress in STATE; run again with "
                   "the same input and STATE to continue after the last durable chunk")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symbolctl", description="Call a symbolsvc deployment.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--deployment", default=os.environ.get("SYMBOLSVC_DEPLOYMENT", "."),
                   help="the directory `symbolsvc init` wrote (env SYMBOLSVC_DEPLOYMENT)")
    p.add_argument("--target", action="append",
                   help="server HOST:PORT (repeatable: round-robin) or dns:///NAME:PORT "
                        "(default: $SYMBOLSVC_TARGET, else the deployment's listen address)")
    p.add_argument("--server-name", help="the TLS name to check on the server certificate")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="deadline of each call (default 10)")
    p.add_argument("--as", dest="as_", metavar="PRINCIPAL",
                   help="whose certificate to use (default: the command's natural role)")
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health", help="standard gRPC health check")
    h.add_argument("--service", default="")
    i = sub.add_parser("issue", help="issue symbols (agency); '-' reads numbers from stdin")
    i.add_argument("numbers", nargs="*")
    _bulk_options(i)
    r = sub.add_parser("release", help="release holdings (agency)")
    r.add_argument("symbols", nargs="*")
    _bulk_options(r)
    u = sub.add_parser("upgrade", help="move holdings to the current key version (agency): "
                       "one JSON line per input symbol with its current-version symbol")
    u.add_argument("symbols", nargs="*")
    _bulk_options(u)
    for name in ("translate", "resolve"):
        t = sub.add_parser(name, help=f"{name} (broker)" + (
            "; without --symbol, the requester's symbols come from --input" if name ==
            "translate" else ""))
        t.add_argument("--requester", required=True)
        t.add_argument("--symbol", required=name == "resolve")
        if name == "translate":
            t.add_argument("--provider", required=True)
            _bulk_options(t)
        t.add_argument("--office-work", required=True)
        t.add_argument("--info-item", required=True)
        t.add_argument("--exchange-id", help="default: a fresh UUID (bulk: a prefix; each "
                       "line's id is PREFIX-RUN-LINE)")
    rec = sub.add_parser("records", help="a subject's access records (portal)")
    rec.add_argument("symbol", help="the portal's symbol for the subject")
    sub.add_parser("checkpoint", help="the latest signed checkpoint (auditor)")
    return p


_DEFAULT_PRINCIPAL = {"translate": "broker", "resolve": "broker", "records": "portal",
                      "checkpoint": "auditor", "health": "broker"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.as_ is None:
        if args.command not in _DEFAULT_PRINCIPAL:
            print("symbolctl: --as AGENCY is required for issue, release and upgrade",
                  file=sys.stderr)
            return 2
        args.as_ = _DEFAULT_PRINCIPAL[args.command]
    if args.command == "translate" and args.symbol is None and not args.input:
        print("symbolctl: translate needs --symbol, or --input FILE ('-': stdin)",
              file=sys.stderr)
        return 2
    try:
        return run(args)
    except CallError as err:
        print(f"symbolctl: {err}", file=sys.stderr)
        return 1
    except UsageError as err:
        print(f"symbolctl: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"symbolctl: cannot read {err.filename}: is --deployment right?", file=sys.stderr)
        return 2
    except ValueError as err:  # a malformed target
        print(f"symbolctl: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symbolctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
