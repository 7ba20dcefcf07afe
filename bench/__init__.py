"""symbolsvc's bench suite: the gRPC load generator (:mod:`bench.load`), its empty-handler
baseline (:mod:`bench.baseline_server`), the storage floor and micro-benchmarks
(``python -m pytest bench``). docs/BENCHMARKS.md has the commands and the figures."""
