"""Tamper-evident access log: RFC 9162 Merkle tree hashing and C2SP signed checkpoints.

Pure and shared with the auditor's verifier (no I/O, nothing of the server):
:mod:`.hashing` (leaf and node hashes), :mod:`.compact` (the frontier, node ranges),
:mod:`.proofs` (building proofs from stored nodes), :mod:`.verification` (checking
them), :mod:`.checkpoint` (signed notes), :mod:`.errors` (one base for every
verification failure).

The server's side: :mod:`.integrate` (the pure integration planner),
:mod:`.sequencer` (the loop that runs it under the lease) and :mod:`.service`
(checkpoints, proofs and entries for the auditor).
"""
