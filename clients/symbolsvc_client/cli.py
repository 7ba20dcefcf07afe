"""``symbolctl``: a command-line client for the common calls.

    symbolctl --deployment dev --as city-chiyoda issue 123456789018
    symbolctl --deployment dev --as broker translate --requester city-chiyoda \\
        --symbol k1.... --provider city-minato --office-work demo-exchange \\
        --info-item demo-record

Each reply is printed as one line of JSON (protobuf's JSON mapping), so the
output pipes into jq. Numbers may be given as ``-`` to read them from
standard input, one per line, which keeps them out of the shell history.
Exit status: 0 on success, 1 when the call failed (the status, reason and
message go to stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Iterator

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from .channel import DEFAULT_TARGET, Deployment
from .clients import AgencyClient, CallError


def _out(msg: Message) -> None:
    print(MessageToJson(msg, indent=None, preserving_proto_field_name=True))


def _numbers(args: list[str]) -> Iterator[str]:
    for a in args:
        if a == "-":
            yield from (line.strip() for line in sys.stdin if line.strip())
        else:
            yield a


def _chunks(items: Iterator[str], n: int = 1000) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(args: argparse.Namespace) -> None:
    dep = Deployment(args.deployment)
    targets = args.target or [DEFAULT_TARGET]
    cmd = args.command
    if cmd == "health":
        client = dep.agency(args.as_, targets)
        status = client.health(args.service)
        from grpc_health.v1 import health_pb2

        print(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    elif cmd == "issue":
        agency = dep.agency(args.as_, targets)
        for chunk in _chunks(_numbers(args.numbers)):
            if len(chunk) == 1:
                _out(agency.issue(chunk[0]))
            else:
                for result in agency.issue_batch(chunk):
                    _out(result)
    elif cmd == "release":
        print("released" if dep.agency(args.as_, targets).release(args.symbol)
              else "already released")
    elif cmd == "upgrade":
        _upgrade(dep.agency(args.as_, targets), args.symbols)
    elif cmd == "translate":
        _out(dep.broker(targets, args.as_).translate(
            args.requester, args.symbol, args.provider, args.office_work, args.info_item,
            args.exchange_id or str(uuid.uuid4())))
    elif cmd == "resolve":
        _out(dep.broker(targets, args.as_).resolve(
            args.requester, args.symbol, args.office_work, args.info_item,
            args.exchange_id or str(uuid.uuid4())))
    elif cmd == "records":
        for record in dep.portal(targets, args.as_).all_records(args.symbol):
            _out(record)
    elif cmd == "checkpoint":
        print(dep.auditor(targets, args.as_).checkpoint(), end="")


def _upgrade(agency: AgencyClient, symbols: list[str]) -> None:
    """One line per symbol, in input order: ``OLD<TAB>NEW``, or ``OLD<TAB>error: ...``."""
    for chunk in _chunks(_numbers(symbols)):
        for old, result in zip(chunk, agency.upgrade(chunk), strict=True):
            if result.WhichOneof("outcome") == "symbol":
                print(f"{old}\t{result.symbol}")
            else:
                print(f"{old}\terror: {result.error.reason}: {result.error.message}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symbolctl", description="Call a symbolsvc deployment.")
    p.add_argument("--deployment", default=os.environ.get("SYMBOLSVC_DEPLOYMENT", "."),
                   help="the directory `symbolsvc init` wrote (env SYMBOLSVC_DEPLOYMENT)")
    p.add_argument("--target", action="append",
                   help=f"server HOST:PORT, repeatable for round-robin (default {DEFAULT_TARGET})")
    p.add_argument("--as", dest="as_", metavar="PRINCIPAL",
                   help="whose certificate to use (default: the command's natural role)")
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health", help="standard gRPC health check")
    h.add_argument("--service", default="")
    i = sub.add_parser("issue", help="issue symbols (agency); '-' reads numbers from stdin")
    i.add_argument("numbers", nargs="+")
    r = sub.add_parser("release", help="release a holding (agency)")
    r.add_argument("symbol")
    u = sub.add_parser("upgrade", help="move holdings to the current key version (agency); "
                       "'-' reads symbols from stdin; prints OLD<TAB>NEW per symbol")
    u.add_argument("symbols", nargs="+")
    for name in ("translate", "resolve"):
        t = sub.add_parser(name, help=f"{name} (broker)")
        t.add_argument("--requester", required=True)
        t.add_argument("--symbol", required=True)
        if name == "translate":
            t.add_argument("--provider", required=True)
        t.add_argument("--office-work", required=True)
        t.add_argument("--info-item", required=True)
        t.add_argument("--exchange-id", help="default: a fresh UUID")
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
    try:
        run(args)
    except CallError as err:
        print(f"symbolctl: {err}", file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"symbolctl: cannot read {err.filename}: is --deployment right?", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
