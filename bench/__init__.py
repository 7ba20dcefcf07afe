"""symbolsvc's bench suite: the gRPC load generator (:mod:`bench.load`: scenarios, open-loop
schedules and capacity search, HDR percentiles, HTML report, ``compare``), its empty-handler
baseline (:mod:`bench.baseline_server`), the storage floor and micro-benchmarks
(``python -m pytest bench``). docs/BENCH.md is the design; docs/BENCHMARKS.md has the
commands and the figures."""
