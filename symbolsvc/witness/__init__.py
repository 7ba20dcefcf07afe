"""The witness: an independent process that cosigns the access log's checkpoints
(C2SP tlog-witness; docs/WITNESS.md). It imports nothing of the server: its config
(:mod:`.config`), its state (:mod:`.state`), the protocol's decisions
(:mod:`.protocol`) and the HTTP app (:mod:`.app`) use only the pure tree and note code
of :mod:`symbolsvc.log`."""
