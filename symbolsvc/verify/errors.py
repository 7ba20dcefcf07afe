"""The verifier's two outcomes besides success."""

from __future__ import annotations

from ..log.errors import VerificationError

__all__ = ["AuditError", "AuditFailure"]


class AuditFailure(VerificationError):
    """The log failed verification; the message names the first bad entry."""


class AuditError(Exception):
    """Verification could not be carried out (unreadable input, no connection)."""
