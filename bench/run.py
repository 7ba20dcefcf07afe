"""A whole bench run: set-up, phases against the baseline and the service, the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import schedule as sched
from .phase import run_phase
from .plan import NEEDS_POPULATION, NUMBER_SPACE, PROCESS_STRIDE, Plan
from .population import ca, deployment_agencies, identity, register
from .scenario import Scenario, summary
from .servers import Spawned, spawn_baseline, spawn_service
from .stats import pick_median, ratios


def prepare_deployment(args: argparse.Namespace, scenario: Scenario | None) -> Path:
    """The deployment directory; created (symbolsvc init) when --spawn and it is missing."""
    deployment = args.deployment.resolve()
    needed = (scenario.agencies() if scenario is not None and scenario.national
              else [args.agency, args.provider])
    if not (deployment / "config.toml").exists():
        if not args.spawn:
            raise SystemExit(f"bench.load: {deployment} is not a deployment (symbolsvc init)")
        from symbolsvc.deploy import init_deployment

        defaults = ["city-chiyoda", "city-minato", "pension-service", "tax-office"]
        init_deployment(deployment, list(dict.fromkeys([*defaults, *needed])))
    missing = sorted(set(needed) - set(deployment_agencies(deployment)))
    if missing:
        raise SystemExit(f"bench.load: the deployment lacks agencies {', '.join(missing[:5])}"
                         f"{'...' if len(missing) > 5 else ''}; give a new directory to "
                         "--deployment and --spawn creates one with them")
    return deployment


def _population_plan(args: argparse.Namespace, plan: Plan,
                     scenario: Scenario | None) -> tuple[list[list[str]], dict[str, Any]]:
    """(holders per pre-registered subject, plan fields) for the run's traffic model."""
    rpcs = plan.rpcs()
    if scenario is not None and scenario.national:
        munis = scenario.municipality_names()
        return scenario.holders(random.randrange(2**32)), {
            "issuers": tuple(munis), "issuer_weights": tuple(scenario.municipality_weights()),
            "new_fraction": scenario.new_fraction, "fixed_pair": False}
    if any(r in NEEDS_POPULATION for r in rpcs):
        return [[args.agency, args.provider]] * args.population, {}
    return [], {}


def execute(args: argparse.Namespace, plan: Plan, scenario: Scenario | None,
            slo: tuple[sched.Objective, ...] | None) -> dict[str, Any]:
    deployment = prepare_deployment(args, scenario)
    rng = random.SystemRandom()
    holders, fields = _population_plan(args, plan, scenario)
    names = {"broker", "portal", args.agency, args.provider,
             *fields.get("issuers", ()), *(a for hs in holders[:1] for a in hs)}
    if scenario is not None and scenario.national:
        names |= set(scenario.agencies())
    plan = replace(plan, ca=ca(deployment),
                   identities={n: identity(deployment, n) for n in sorted(names)}, **fields)
    servers: dict[str, Spawned] = {}
    setup: dict[str, Any] = {}
    try:
        if args.spawn:
            servers["service"] = spawn_service(deployment, args.workers)
        target = servers["service"].address if args.spawn else args.target
        if args.baseline:
            servers["baseline"] = spawn_baseline(deployment, args.workers)
        if holders:
            t0 = time.monotonic()
            base = rng.randrange(NUMBER_SPACE - len(holders))
            portal = "ListAccessRecords" in plan.rpcs()
            subjects = asyncio.run(register(deployment, target, holders, base, portal))
            plan = replace(plan, population=subjects)
            setup = {"subjects": len(subjects),
                     "holdings": sum(len(h) for h in holders) + (len(holders) if portal else 0),
                     "seconds": round(time.monotonic() - t0, 1)}
            if not args.quiet:
                print(f"  registered {setup['subjects']:,} subjects ({setup['holdings']:,} "
                      f"holdings) in {setup['seconds']} s", file=sys.stderr)
        order = [("baseline", servers["baseline"].address)] if args.baseline else []
        order.append(("service", target))
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            runs: dict[str, dict[str, Any]] = {}
            seed = rng.randrange(2**32)  # both servers get the same sequence of requests
            # Alternate the order, so that drift on a shared machine favours neither.
            for label, address in order if r % 2 == 0 else order[::-1]:
                needed = args.processes * PROCESS_STRIDE
                phase_plan = replace(plan, target=address,
                                     number_base=rng.randrange(NUMBER_SPACE - needed),
                                     seed=seed)
                runs[label] = run_phase(label, phase_plan, args.processes, servers.get(label),
                                        args.quiet)
            rounds.append({"runs": runs, "ratios": ratios(runs["service"], runs["baseline"])
                           if "baseline" in runs else None})
        refined: dict[str, dict[str, Any]] = {}
        if slo is not None and args.refine:
            for label, address in order:
                refined[label] = refine(label, replace(plan, target=address), slo, args,
                                        rounds[-1]["runs"][label], servers.get(label), rng)
    finally:
        for s in servers.values():
            s.stop()
    report = build_report(args, plan, scenario, slo, rounds, setup)
    for label, r in refined.items():
        report["capacity"][label]["refined"] = r
    if len(refined) == 2 and refined["baseline"]["offered_per_s"]:
        report["capacity"]["refined_ratio"] = round(
            refined["service"]["offered_per_s"] / refined["baseline"]["offered_per_s"], 3)
    return report


def refine(label: str, plan: Plan, slo: tuple[sched.Objective, ...], args: argparse.Namespace,
           run: dict[str, Any], server: Spawned | None, rng: random.Random) -> dict[str, Any]:
    """Bisect between the knee of a step run and the first step that missed the SLO with
    ``--refine`` constant-rate probes of one step's duration each."""
    cap = sched.capacity(slo, run["windows"])
    if cap["first_miss"] is None:
        return {"offered_per_s": cap["offered_per_s"], "probes": [],
                "note": "every step met the SLO: raise --rate-end"}
    lo = cap["offered_per_s"]
    hi = run["windows"][cap["first_miss"]]["offered_per_s"]
    probes = []
    for _ in range(args.refine):
        mid = round((lo + hi) / 2, 1)
        probe = replace(plan, schedule=sched.const(mid, args.step_duration),
                        warmup=min(plan.warmup, 1.0),
                        seed=rng.randrange(2**32),
                        number_base=rng.randrange(NUMBER_SPACE - args.processes
                                                  * PROCESS_STRIDE))
        figures = run_phase(f"{label} probe {mid:g}/s", probe, args.processes, server,
                            args.quiet)
        window = figures["windows"][0]
        broken = sched.evaluate(slo, window)
        probes.append({"offered_per_s": mid, "calls_per_s": window["calls_per_s"],
                       "latency_ms": window["latency_ms"], "slo_broken": broken})
        lo, hi = (lo, mid) if broken else (mid, hi)
    return {"offered_per_s": lo, "first_miss_per_s": hi, "probes": probes}


def build_report(args: argparse.Namespace, plan: Plan, scenario: Scenario | None,
                 slo: tuple[sched.Objective, ...] | None, rounds: list[dict[str, Any]],
                 setup: dict[str, Any]) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(concurrency=plan.concurrency * args.processes, mode=plan.mode,
                  duration=plan.duration,
                  mix=[{"rpc": r, "weight": w, "batch": b} for r, w, b in plan.mix],
                  schedule={"kind": plan.schedule.kind, "describe": plan.schedule.describe(),
                            "segments": [[s.start, s.end, s.rate_from, s.rate_to]
                                         for s in plan.schedule.segments]})
    config["batch"] = plan.mix[0][2] if len(plan.mix) == 1 else None
    report: dict[str, Any] = {
        "version": 2,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "config": config,
        "scenario": summary(scenario) if scenario is not None else None,
        "setup": setup,
        **pick_median(rounds),
        "rounds": rounds,
    }
    if slo is not None:
        report["capacity"] = sched.capacities(slo, report["runs"])
    return report


def machine() -> dict[str, Any]:
    import grpc

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = None
    with contextlib.suppress(OSError):
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "grpcio": grpc.__version__, "platform": platform.platform(), "loadavg": load}
