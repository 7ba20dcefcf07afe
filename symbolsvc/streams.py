"""Bounds on long-lived calls: an idle timeout for client streams, a lifetime for streams.

* A client stream (``StreamIssueSymbols``) that sends no message for
  ``stream_idle_seconds`` ends with ``DEADLINE_EXCEEDED`` (reason
  ``STREAM_IDLE``); one open for ``stream_max_seconds`` ends with
  ``UNAVAILABLE`` (reason ``STREAM_LIFETIME``) at its next read. Every chunk
  answered before either is durable; the client resends unanswered chunks on a
  new stream.
* A server stream (``WatchAccessRecords``) ends after ``watch_max_seconds``
  with ``UNAVAILABLE`` (reason ``STREAM_LIFETIME``); the portal resumes from
  the last cursor it received, as after a server restart.

Both keep one caller from pinning a stream slot (and its memory) forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from .errors import SymbolsvcError, Unavailable


class StreamIdle(SymbolsvcError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def _lifetime(seconds: float) -> Unavailable:
    return Unavailable("STREAM_LIFETIME", f"the stream reached its maximum lifetime of "
                       f"{seconds:g} s; open a new one (resume from the last cursor or "
                       "resend unanswered chunks)")


async def bounded_requests(
    requests: AsyncIterator[Any], *, idle: float, lifetime: float,
    check: Callable[[Any], Awaitable[None]],
) -> AsyncIterator[Any]:
    """The client's messages, each passed to ``check`` (decode check, rate pacing) first;
    ends the call when the client is idle too long or the stream too old.

    The timeout wraps only the read (never a ``yield``), in the handler's own task: one
    timer per message, no task per message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    it = aiter(requests)
    while True:
        now = loop.time()
        if now >= deadline:
            raise _lifetime(lifetime)
        idle_expires = now + idle < deadline
        try:
            async with asyncio.timeout_at(min(now + idle, deadline)):
                message = await anext(it)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if idle_expires:
                raise StreamIdle("STREAM_IDLE", f"no message on this stream for {idle:g} s; "
                                 "open a new stream when there is more to send") from None
            raise _lifetime(lifetime) from None
        await check(message)
        yield message


async def bounded_replies(replies: AsyncIterator[Any], lifetime: float) -> AsyncIterator[Any]:
    """A server stream's replies until ``lifetime`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    it = aiter(replies)
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    reply = await anext(it)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _lifetime(lifetime) from None
            yield reply
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
