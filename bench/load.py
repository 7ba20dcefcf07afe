"""gRPC load generator for symbolsvc, with an empty-handler baseline in the same run.

    python -m bench.load --deployment DIR --spawn --baseline --rpc TranslateSymbol \\
        --concurrency 64 --warmup 3 --duration 15 --json out.json --html out.html
    python -m bench.load --deployment DIR --spawn --baseline --scenario weekday-peak
    python -m bench.load --deployment DIR --spawn --baseline --rpc IssueSymbol \\
        --schedule step --rate-start 100 --rate-step 100 --rate-end 1200 \\
        --step-duration 5 --slo 'p99<=50ms,errors<=0.1%' --html capacity.html
    python -m bench.load compare OLD.json NEW.json --threshold 5%
    python -m bench.load report RUN.json --html RUN.html --charts DIR

Closed loop (``--concurrency N``): N callers, each sending its next call when
the previous one returns; latencies are corrected for coordinated omission
(HdrHistogram, expected interval = the warm-up's median latency). Open loop
(``--rate R``, or ``--schedule step|ramp``): calls are *scheduled* at the
offered rate whatever the server does, and each latency is measured from its
scheduled send time. Step and ramp schedules report every step (or ramp
window) on its own; with ``--slo`` the capacity is the highest offered rate
that meets the SLO, for the service and for the baseline, in the same run.

A run drives one RPC (``--rpc``) or a mix: ``--mix IssueSymbol=60,
TranslateSymbol=30,ResolveProviders=8,ListAccessRecords=2`` or a scenario file
(``--scenario FILE|NAME``, see bench/scenarios/) with a skewed population of
agencies and subjects. Callers are spread over ``--processes`` client
processes, each with its own event loop and ``--channels`` connections per
identity; their HDR histograms are merged. Each phase runs ``--warmup``
seconds unmeasured, then the measured window.

``--baseline`` starts ``bench.baseline_server`` (same services, same TLS,
fixed same-sized replies, no work), drives it with the identical load, and
quotes symbolsvc's throughput and latency as ratios to it. ``--spawn`` starts
``symbolsvc serve`` on the deployment (created first, with the scenario's
agencies, when the directory does not exist). For servers it started, the
report holds CPU per process and thread and RSS over the run, from /proc.

``--json``, ``--markdown``, ``--html`` (one self-contained page with charts)
and ``--charts DIR`` (PNG and SVG) write the report; ``compare`` diffs two
JSON reports and exits 1 when a figure regressed beyond the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import schedule as sched
from .plan import RPCS, Plan, nth_number
from .run import execute
from .scenario import Scenario, load_scenario, parse_mix

DEFAULTS = {"warmup": 3.0, "duration": 10.0, "rate": 0.0}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.load",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--deployment", required=True, type=Path,
                   help="a deployment directory (symbolsvc init): certificates and config")
    p.add_argument("--target", help="HOST:PORT of a running server (not with --spawn)")
    p.add_argument("--spawn", action="store_true",
                   help="start symbolsvc serve on the deployment for this run")
    p.add_argument("--workers", type=int, default=1,
                   help="with --spawn/--baseline: server processes (serve --workers N)")
    p.add_argument("--baseline", action="store_true",
                   help="also drive the empty-handler server and print ratios to it")
    what = p.add_argument_group("what to send")
    what.add_argument("--rpc", choices=list(RPCS), default="IssueSymbol")
    what.add_argument("--mix", help="RPC=weight[:batch],... instead of --rpc")
    what.add_argument("--scenario", help="a scenario TOML file or a shipped scenario's name")
    what.add_argument("--batch", type=int, default=1000,
                      help="items per batch call or stream chunk (default %(default)s)")
    what.add_argument("--population", type=int, default=2000,
                      help="translate/resolve/portal: subjects issued first (not scenarios)")
    what.add_argument("--agency", default="city-chiyoda",
                      help="issuing agency, and the requester for translate/resolve")
    what.add_argument("--provider", default="city-minato", help="translate: the provider")
    what.add_argument("--office-work", default="demo-exchange")
    what.add_argument("--info-item", default="demo-record")
    load = p.add_argument_group("how much")
    load.add_argument("--concurrency", type=int, default=64,
                      help="closed loop: concurrent callers in all (open-loop streams: streams)")
    load.add_argument("--rate", type=float,
                      help="open loop: calls per second in all (0: closed loop)")
    load.add_argument("--schedule", choices=["const", "step", "ramp"],
                      help="open-loop schedule (default: const with --rate, else closed loop)")
    load.add_argument("--rate-start", type=float, help="step/ramp: first rate, calls/s")
    load.add_argument("--rate-end", type=float, help="step/ramp: last rate, calls/s")
    load.add_argument("--rate-step", type=float, help="step: increment, calls/s")
    load.add_argument("--step-duration", type=float, default=5.0,
                      help="step: seconds per step (default %(default)s)")
    load.add_argument("--ramp-windows", type=int, default=10,
                      help="ramp: windows the ramp is reported in (default %(default)s)")
    load.add_argument("--slo", help="e.g. 'p99<=50ms,errors<=0.1%%': find the capacity")
    load.add_argument("--refine", type=int, default=0,
                      help="with --slo: bisect between the knee and the first missed step "
                           "with this many constant-rate probes of --step-duration each")
    load.add_argument("--warmup", type=float, help="seconds (default 3)")
    load.add_argument("--duration", type=float,
                      help="seconds measured (default 10; step: steps x step duration)")
    load.add_argument("--processes", type=int, default=2, help="client processes")
    load.add_argument("--channels", type=int, default=4, help="connections per process")
    load.add_argument("--max-calls", type=int, default=5_000_000,
                      help="upper bound on calls per client process and phase")
    load.add_argument("--max-inflight", type=int, default=10_000,
                      help="open loop: outstanding calls per process before the scheduler waits")
    load.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    load.add_argument("--co-interval", type=float,
                      help="closed loop: expected interval (ms) for the coordinated-omission "
                           "correction (default: the warm-up's median latency)")
    load.add_argument("--rounds", type=int, default=1,
                      help="with --baseline: alternate baseline and service this many times and "
                           "quote the median ratios")
    out = p.add_argument_group("report")
    out.add_argument("--json", type=Path, help="write the report as JSON here")
    out.add_argument("--markdown", type=Path, help="write the report as Markdown here")
    out.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    out.add_argument("--charts", type=Path, help="write the charts as PNG and SVG here")
    out.add_argument("--samples", action="store_true",
                     help="keep every raw latency in the JSON (for checking percentiles)")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _schedule(args: argparse.Namespace) -> sched.Schedule:
    kind = args.schedule or ("const" if args.rate else "closed")
    if kind == "closed":
        return sched.closed(args.duration)
    if kind == "const":
        if not args.rate or args.rate <= 0:
            raise SystemExit("bench.load: --schedule const needs --rate > 0")
        return sched.const(args.rate, args.duration)
    if args.rate_start is None or args.rate_end is None:
        raise SystemExit(f"bench.load: --schedule {kind} needs --rate-start and --rate-end")
    try:
        if kind == "step":
            if args.rate_step is None:
                raise SystemExit("bench.load: --schedule step needs --rate-step")
            return sched.steps(args.rate_start, args.rate_end, args.rate_step,
                               args.step_duration)
        return sched.ramp(args.rate_start, args.rate_end, args.duration, args.ramp_windows)
    except ValueError as exc:
        raise SystemExit(f"bench.load: {exc}") from None


def _resolve(args: argparse.Namespace) -> Scenario | None:
    """Apply a scenario's [load] defaults to options the command line left unset."""
    scenario = None
    if args.scenario and args.mix:
        raise SystemExit("bench.load: give --scenario or --mix, not both")
    try:
        if args.scenario:
            scenario = load_scenario(args.scenario)
        elif args.mix:
            m = parse_mix(args.mix)
            scenario = Scenario(name="mix", mix=m, subjects=args.population, municipalities=1)
    except ValueError as exc:
        raise SystemExit(f"bench.load: {exc}") from None
    defaults = dict(DEFAULTS)
    if scenario is not None and args.scenario:
        defaults.update({k: v for k, v in scenario.load.items() if k in DEFAULTS})
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return scenario


def check(args: argparse.Namespace) -> None:
    if args.spawn == bool(args.target):
        raise SystemExit("bench.load: give exactly one of --target HOST:PORT and --spawn")
    if args.target and not args.target.startswith(("127.0.0.1:", "localhost:", "[::1]:")):
        raise SystemExit("bench.load: load is only sent to a loopback address")
    if RPCS[args.rpc][1] and not 1 <= args.batch <= 1000:
        raise SystemExit("bench.load: --batch must be 1..1000")
    if args.processes < 1 or args.channels < 1 or args.concurrency < args.processes:
        raise SystemExit("bench.load: need processes >= 1, channels >= 1, "
                         "concurrency >= processes")
    if args.slo and args.schedule not in ("step", "ramp"):
        raise SystemExit("bench.load: --slo searches a step or ramp schedule (--schedule step)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        from .compare import main as compare_main

        return compare_main(argv[1:])
    if argv[:1] == ["report"]:
        return _rerender(argv[1:])
    args = build_parser().parse_args(argv)
    scenario = _resolve(args)
    check(args)
    try:
        slo = sched.parse_slo(args.slo) if args.slo else None
    except ValueError as exc:
        raise SystemExit(f"bench.load: {exc}") from None
    schedule = _schedule(args)
    mix = scenario.mix if scenario else ((args.rpc, 1.0, args.batch if RPCS[args.rpc][1]
                                          else 1),)
    plan = Plan(
        target="", ca=b"", identities={}, mix=mix,
        mode="closed" if schedule.kind == "closed" else "open",
        concurrency=args.concurrency // args.processes, schedule=schedule,
        channels=args.channels, start_at=0.0, warmup=args.warmup, max_calls=args.max_calls,
        max_inflight=args.max_inflight, timeout=args.timeout, number_base=0,
        issuers=(args.agency,), issuer_weights=(1.0,),
        office_work=args.office_work, info_item=args.info_item,
        co_interval_ms=args.co_interval, keep_samples=args.samples)
    report = execute(args, plan, scenario, slo)
    return _write(args, report)


def _rerender(argv: list[str]) -> int:
    """``report IN.json [--html F] [--charts DIR] [--markdown F]``: render a saved report."""
    p = argparse.ArgumentParser(prog="python -m bench.load report",
                                description="render a saved JSON report again")
    p.add_argument("report", type=Path)
    p.add_argument("--html", type=Path)
    p.add_argument("--charts", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    report = json.loads(args.report.read_text())
    cap = report.get("capacity")
    if cap:  # recomputed, so that a report saved by an older version renders too
        slo = sched.parse_slo(cap["service"]["slo"])
        report["capacity"] = sched.capacities(slo, report["runs"])
        for key in ("refined_ratio", *report["runs"]):
            old = cap.get(key)
            if key == "refined_ratio" and old is not None:
                report["capacity"][key] = old
            elif isinstance(old, dict) and "refined" in old:
                report["capacity"][key]["refined"] = old["refined"]
    args.json = None
    return _write(args, report)


def _write(args: argparse.Namespace, report: dict[str, Any]) -> int:
    from .markdown import markdown

    table = markdown(report)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    if args.markdown:
        args.markdown.write_text(table)
    if args.html or args.charts:
        from .report_html import write_charts, write_html

        if args.html:
            write_html(report, args.html)
        if args.charts:
            write_charts(report, args.charts)
    return 0


__all__ = ["build_parser", "main", "nth_number"]

if __name__ == "__main__":
    sys.exit(main())
