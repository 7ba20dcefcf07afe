"""The one base of every verification failure of the access log's data.

A proof that does not verify (:class:`ProofError`), a signed note or checkpoint
that does not parse or verify (:class:`~.checkpoint.NoteError`,
:class:`~.checkpoint.CheckpointError`) and a log that fails the auditor's
checks (:class:`symbolsvc.verify.AuditFailure`) all derive from
:class:`VerificationError`, so a client or an auditor can treat "this log is
not to be trusted" as one case. It is a ``ValueError``: malformed input and a
well-formed proof that does not verify are the same failure to a verifier.
"""

from __future__ import annotations

__all__ = ["ProofError", "VerificationError"]


class VerificationError(ValueError):
    """Data from the log failed verification; treat the log as untrusted."""


class ProofError(VerificationError):
    """A proof, root or tree size failed verification; treat the log as untrusted.

    Raised for malformed input as well as for a well-formed proof that does not
    verify: a verifier must never distinguish "probably fine" from "verified".
    """
