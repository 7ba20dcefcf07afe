"""The error hierarchy of symbolsvc.

Every error the core raises on purpose is a :class:`SymbolsvcError` carrying a
gRPC status code name, a stable UPPER_SNAKE ``reason`` and a message that says
what to do. The gRPC layer maps them to status codes without knowing any
business rule. Messages never contain an individual number.
"""

from __future__ import annotations

import grpc


class SymbolsvcError(Exception):
    """Base class: a failure the caller can act on."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, reason: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


class Unauthenticated(SymbolsvcError):
    """The caller presented no identity this deployment knows."""

    code = grpc.StatusCode.UNAUTHENTICATED


class InvalidArgument(SymbolsvcError):
    """The request is malformed; nothing was changed. Fix the input."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(SymbolsvcError):
    """A holding the call depends on does not exist (or was released)."""

    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(SymbolsvcError):
    """The caller's role or the permission table does not allow the call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(SymbolsvcError):
    """The system is not yet in the state the call needs; retry later."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(SymbolsvcError):
    """Storage is unreachable; nothing was changed. Retry with back-off."""

    code = grpc.StatusCode.UNAVAILABLE


class ConfigError(Exception):
    """A deployment file (config, policy, keyring) is missing or malformed.

    Raised at start-up or reload; the message names the file and the problem.
    """


class KeyringError(ConfigError):
    """The keyring cannot be opened: wrong passphrase, or a damaged file."""


class ResourceExhausted(SymbolsvcError):
    """A bounded resource (the database's connection pool, the disk) is full; nothing was
    changed.

    Retry with back-off; the service is up, only busy (unlike :class:`Unavailable`)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class AlreadyExists(SymbolsvcError):
    """The request names something that exists with other content (an exchange id
    reused for another exchange); nothing was changed."""

    code = grpc.StatusCode.ALREADY_EXISTS
