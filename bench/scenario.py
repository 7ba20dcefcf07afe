"""Scenarios: production-like traffic described in a TOML file (or ``--mix``).

A scenario names the RPC mix (weight and batch size per RPC), the population
(how many subjects are registered beforehand, over how many agencies, and how
skewed: municipality ``k`` gets weight ``1 / k**skew``, a Zipf law, so a few
large cities and many small towns), the share of issue calls that register a
new subject, and the load to offer. See ``bench/scenarios/*.toml``.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plan import RPCS

SCENARIOS = Path(__file__).parent / "scenarios"


@dataclass(frozen=True)
class Scenario:
    name: str
    mix: tuple[tuple[str, float, int], ...]  # (rpc, weight, batch)
    subjects: int = 2000
    municipalities: int = 2
    skew: float = 1.0
    national: dict[str, float] = field(default_factory=dict)  # agency -> share holding
    new_fraction: float = 1.0
    load: dict[str, Any] = field(default_factory=dict)  # defaults for the command line
    description: str = ""
    assumptions: tuple[str, ...] = ()

    def municipality_names(self) -> list[str]:
        return [f"muni-{k:04d}" for k in range(1, self.municipalities + 1)]

    def agencies(self) -> list[str]:
        """Every agency the scenario needs in the deployment."""
        return [*self.national, *self.municipality_names()]

    def municipality_weights(self) -> list[float]:
        return [1.0 / k ** self.skew for k in range(1, self.municipalities + 1)]

    def holders(self, seed: int) -> list[list[str]]:
        """Each pre-registered subject's holding agencies, home municipality first."""
        rng = random.Random(seed)
        homes = rng.choices(self.municipality_names(), self.municipality_weights(),
                            k=self.subjects)
        out = []
        for home in homes:
            hs = [home] + [a for a, share in self.national.items() if rng.random() < share]
            if len(hs) == 1 and self.national:  # everyone is known to at least one more
                hs.append(next(iter(self.national)))
            out.append(hs)
        return out

    def needs_portal(self) -> bool:
        return any(rpc == "ListAccessRecords" for rpc, _, _ in self.mix)


def parse_mix(text: str) -> tuple[tuple[str, float, int], ...]:
    """``IssueSymbol=60,TranslateSymbol=30,BatchTranslateSymbols=5:20`` (RPC=weight[:batch])."""
    out = []
    for term in text.split(","):
        name, _, rest = term.strip().partition("=")
        weight, _, batch = rest.partition(":")
        out.append(_entry(name, {"weight": float(weight or 0), "batch": int(batch or 100)}))
    return _check_mix(out)


def _entry(rpc: str, spec: dict[str, Any]) -> tuple[str, float, int]:
    if rpc not in RPCS:
        raise ValueError(f"unknown RPC {rpc!r} in the mix (one of {', '.join(RPCS)})")
    batch = int(spec.get("batch", 100)) if RPCS[rpc][1] else 1
    if not 1 <= batch <= 1000:
        raise ValueError(f"{rpc}: batch must be 1..1000")
    return rpc, float(spec["weight"]), batch


def _check_mix(mix: list[tuple[str, float, int]]) -> tuple[tuple[str, float, int], ...]:
    if not mix or any(w <= 0 for _, w, _ in mix):
        raise ValueError("a mix needs at least one RPC, each with a weight > 0")
    if "StreamIssueSymbols" in [m[0] for m in mix] and len(mix) > 1:
        raise ValueError("StreamIssueSymbols runs alone (its calls are chunks of a stream)")
    return tuple(mix)


def load_scenario(path_or_name: str) -> Scenario:
    """A scenario file, or the name of a shipped one (``weekday-peak``)."""
    path = Path(path_or_name)
    if not path.exists():
        path = SCENARIOS / f"{path_or_name.replace('-', '_')}.toml"
    if not path.exists():
        shipped = ", ".join(p.stem.replace("_", "-") for p in sorted(SCENARIOS.glob("*.toml")))
        raise ValueError(f"no scenario {path_or_name!r} (shipped: {shipped})")
    data = tomllib.loads(path.read_text())
    pop = data.get("population", {})
    mix = _check_mix([_entry(rpc, spec if isinstance(spec, dict) else {"weight": spec})
                      for rpc, spec in data.get("mix", {}).items()])
    sc = Scenario(
        name=data.get("name", path.stem), mix=mix, subjects=int(pop.get("subjects", 2000)),
        municipalities=int(pop.get("municipalities", 2)), skew=float(pop.get("skew", 1.0)),
        national={k: float(v) for k, v in pop.get("national", {}).items()},
        new_fraction=float(pop.get("new_fraction", 1.0)), load=dict(data.get("load", {})),
        description=data.get("description", "").strip(),
        assumptions=tuple(data.get("assumptions", ())))
    if sc.municipalities < 1 or sc.subjects < 1 or not 0.0 <= sc.new_fraction <= 1.0:
        raise ValueError(f"{path}: need municipalities >= 1, subjects >= 1, "
                         "0 <= new_fraction <= 1")
    return sc


def summary(sc: Scenario) -> dict[str, Any]:
    """What a report says about the scenario it ran."""
    w = sc.municipality_weights()
    top = sum(w[: max(1, len(w) // 10)]) / sum(w)
    return {"name": sc.name, "description": sc.description, "assumptions": list(sc.assumptions),
            "mix": [{"rpc": r, "weight": wt, "batch": b} for r, wt, b in sc.mix],
            "subjects": sc.subjects, "municipalities": sc.municipalities, "skew": sc.skew,
            "largest_tenth_share": round(top, 3), "national": sc.national,
            "new_fraction": sc.new_fraction}
