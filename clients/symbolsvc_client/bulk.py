"""symbolctl's bulk framework: input lines in, one JSON line out per input line, resumable.

Input: a file or stdin, one value per line, or one column of a CSV file (``--csv
--column NAME`` reads a header row; ``--column N`` counts from 1 and reads no header).
Every input line gets exactly one output line, in input order, each a JSON object of
one fixed shape per operation: ``line`` (the input's line number, 1-based), ``status``,
the operation's fields (``null`` when they do not apply) and ``error`` (``null``, or
``code``/``reason``/``message``). A blank line is ``"status": "skipped"``.

Durability and resume: an operation yields each chunk's outcomes once the server has
made the chunk durable (the issue stream answers a chunk only after its commit). After
writing a chunk's lines, the runner flushes and fsyncs the output and then atomically
replaces the state file (``--resume STATE``) with the next input line, the output's
length and a hash of the input consumed so far. Run again with the same input and
``--resume STATE`` and it truncates the output to that length, checks the hash, and
goes on with the next line: nothing acknowledged is lost and no output line repeats.
(A chunk in flight at a crash is sent again; issue and release are idempotent, and
translations reuse their exchange ids, which the state's run id makes stable.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import CallError
from .ids import new_id

CHUNK_LINES = 1000  # input lines per chunk (the server's batch and stream-chunk maximum)


class UsageError(Exception):
    """Bad input or arguments: symbolctl prints one line and exits 2."""


@dataclass(frozen=True)
class Item:
    line: int  # 1-based line number in the input
    value: str  # stripped; "" for a blank line


Outcome = dict[str, Any]  # one output line (without "line"): status, fields, error


class Operation(Protocol):
    """One bulk command. ``fields`` names its output fields (besides line, status and
    error; absent ones are null); ``run`` gets chunks of non-blank items and yields one
    list of outcomes per chunk (one per item), in order, each only once the chunk is
    durable on the server."""

    name: str
    fields: tuple[str, ...]
    counted: tuple[str, ...]  # the statuses the summary counts, "failed" included

    def run(self, chunks: Iterator[list[Item]], context: RunContext) -> Iterator[list[Outcome]]:
        ...


@dataclass(frozen=True)
class RunContext:
    run_id: str  # stable across resumes: operations derive idempotency keys from it


def error_outcome(err: CallError | None, code: str = "", reason: str = "",
                  message: str = "") -> Outcome:
    if err is not None:
        code, reason, message = err.code.name, err.reason, err.message
    return {"status": "failed", "error": {"code": code, "reason": reason, "message": message}}


# -- input -------------------------------------------------------------------------------

def read_items(stream: IO[str], *, csv_mode: bool = False,
               column: str | None = None) -> Iterator[Item]:
    """The input's items with their line numbers (a header row, if any, yields none)."""
    if not csv_mode:
        for n, raw in enumerate(stream, start=1):
            yield Item(n, raw.strip())
        return
    reader = csv.reader(stream)
    index: int | None = None
    if column is not None and column.isdigit():
        index = int(column) - 1
        if index < 0:
            raise UsageError("--column counts from 1")
    start = 1
    for row in reader:
        line, start = start, reader.line_num + 1
        if index is None:
            names = [c.strip() for c in row]
            wanted = column if column is not None else (names[0] if names else "")
            if wanted not in names:
                raise UsageError(f"CSV header has no column {wanted!r} (has {names})")
            index = names.index(wanted)
            continue
        yield Item(line, row[index].strip() if index < len(row) else "")


def chunked(items: Iterator[Item], n: int = CHUNK_LINES) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- state -------------------------------------------------------------------------------

@dataclass
class State:
    command: str
    run_id: str
    next_line: int = 1
    output_bytes: int = 0
    input_sha256: str = hashlib.sha256().hexdigest()
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, command: str) -> State:
        if not path.exists():
            return cls(command, new_id())
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            state = cls(**doc)
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot read resume state {path}: {exc}") from None
        if state.command != command:
            raise UsageError(f"{path} is the state of a {state.command!r} run, not {command!r}")
        return state

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.__dict__, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _hash_item(h: Any, item: Item) -> None:
    h.update(f"{item.line}\t{item.value}\n".encode())


# -- the runner --------------------------------------------------------------------------

@dataclass
class Summary:
    counts: dict[str, int]  # over the whole load, earlier runs of a resumed one included
    lines: int  # input lines answered, earlier runs included
    run_lines: int  # input lines answered by this run
    elapsed: float  # seconds, this run

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    def text(self, name: str) -> str:
        parts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
        rate = self.run_lines / self.elapsed if self.elapsed > 0 else 0.0
        return (f"symbolctl {name}: {self.lines} lines: {parts}; {self.elapsed:.1f} s, "
                f"{rate:,.0f} lines/s")


def _progress(total: int | None, initial: int) -> Any:
    """A tqdm bar on stderr when stderr is a terminal (and tqdm is installed), else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="line", unit_scale=True, file=sys.stderr,
                dynamic_ncols=True)


def run_bulk(op: Operation, items: Iterator[Item], *, output: Path | None,
             state_path: Path | None, total_lines: int | None = None,
             failures: list[str] | None = None) -> Summary:
    """Run ``op`` over ``items``; write the output lines; keep the resume state. The
    first failed lines are described in ``failures`` (line, code, reason, message)."""
    state = State.load(state_path, op.name) if state_path else State(op.name, new_id())
    hasher = hashlib.sha256()
    skipped_any = False
    for item in items:  # re-read what an earlier run already did, checking it is the same
        if item.line >= state.next_line:
            items = _prepend(item, items)
            break
        _hash_item(hasher, item)
        skipped_any = True
    if skipped_any and hasher.hexdigest() != state.input_sha256:
        raise UsageError("the input differs from the interrupted run's: resume needs the "
                         "same input")
    out = _open_output(output, state.output_bytes)
    shape = {"line": 0, "status": "", **dict.fromkeys(op.fields), "error": None}
    counts = {k: state.counts.get(k, 0) for k in op.counted}
    counts["skipped"] = state.counts.get("skipped", 0)
    bar = _progress(total_lines, state.next_line - 1)
    started = time.monotonic()
    done_lines = 0
    context = RunContext(state.run_id)
    pending: list[list[Item]] = []

    def values(chunks: Iterator[list[Item]]) -> Iterator[list[Item]]:
        for chunk in chunks:
            pending.append(chunk)
            yield [i for i in chunk if i.value]

    try:
        for outcomes in op.run(values(chunked(items)), context):
            chunk = pending.pop(0)
            it = iter(outcomes)
            lines = []
            for item in chunk:
                _hash_item(hasher, item)
                outcome = next(it) if item.value else {"status": "skipped"}
                doc = {**shape, **outcome, "line": item.line}
                counts[doc["status"]] = counts.get(doc["status"], 0) + 1
                if doc["status"] == "failed" and failures is not None and len(failures) < 100:
                    e = doc["error"]
                    failures.append(f"line {item.line}: {e['code']} [{e['reason']}] "
                                    f"{e['message']}")
                lines.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
            out.write("\n".join(lines) + "\n")
            out.flush()
            done_lines += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
            if state_path is not None:
                if output is not None:
                    os.fsync(out.fileno())
                state.next_line = chunk[-1].line + 1
                state.output_bytes = out.tell() if output is not None else 0
                state.input_sha256 = hasher.hexdigest()
                state.counts = counts
                state.save(state_path)
    finally:
        if bar is not None:
            bar.close()
        if output is not None:
            out.close()
    return Summary(counts, state.next_line - 1 if state_path else done_lines, done_lines,
                   time.monotonic() - started)


def _prepend(first: Item, rest: Iterator[Item]) -> Iterator[Item]:
    yield first
    yield from rest


def _open_output(output: Path | None, length: int) -> IO[str]:
    if output is None:
        return sys.stdout
    try:
        f = open(output, "a+", encoding="utf-8")  # noqa: SIM115 - closed by run_bulk
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    f.truncate(length)  # drop lines written after the last durable state
    f.seek(length)
    return f


def open_input(path: str) -> tuple[IO[str], int | None]:
    """The input stream and its line count (None for stdin: the bar shows no ETA)."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline=""), None
    try:
        with open(path, "rb") as f:
            total = sum(1 for _ in f)
        return open(path, encoding="utf-8", newline=""), total
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


__all__ = ["CHUNK_LINES", "Item", "Operation", "Outcome", "RunContext", "State", "Summary",
           "UsageError", "chunked", "error_outcome", "open_input", "read_items", "run_bulk"]
