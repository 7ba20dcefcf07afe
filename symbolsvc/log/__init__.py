"""Tamper-evident access log: RFC 9162 Merkle tree hashing and C2SP signed checkpoints."""
