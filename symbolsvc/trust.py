"""Issue 14's per-deployment trust settings ([broker]) as the core's collaborators."""

from __future__ import annotations

import time

from .blinding import Blinder
from .config import Config
from .inquiries import InquiryChecker


def trust_for(config: Config) -> tuple[InquiryChecker, Blinder | None]:
    """The inquiry checker (always: a signature that is present
    is verified; ``require_signed_inquiries`` refuses unsigned ones) and, under
    ``blind_translation``, the blinder. Agency certificates and HPKE keys are read from the
    directory of ``[tls] ca`` (the deployment's ``pki/``); a requester certificate must be
    issued by that CA and not be on ``[tls] revoked``."""
    broker = config.settings.get("broker", {})
    pki = config.tls_ca.parent
    checker = InquiryChecker(
        pki, required=bool(broker.get("require_signed_inquiries", False)),
        window_s=int(broker.get("inquiry_window_seconds", 300)),
        clock_us=lambda: time.time_ns() // 1000, ca=config.tls_ca, revoked=config.revoked)
    return checker, (Blinder(pki) if broker.get("blind_translation", False) else None)
