"""What the broker passes through: anything that builds the signed request (the agency's
``trust.SignedInquiry``), so the broker's client needs no cryptography."""

from __future__ import annotations

from typing import Protocol

from .v1 import broker_service_pb2 as broker_pb


class SignedInquiry(Protocol):
    def translate_request(self) -> broker_pb.TranslateSymbolRequest: ...

    def resolve_request(self) -> broker_pb.ResolveProvidersRequest: ...
