"""The documentation stands alone (CONTRIBUTING.md rule 10) and the contract is consistent.

* Every relative link in the repository's Markdown (README.md, CONTRIBUTING.md, docs/*.md
  and any other tracked ``.md``) resolves to a file or directory inside the repository,
  and a ``#fragment`` on a link to a Markdown file names one of its headings. Absolute
  links are allowed only over http(s) to public hosts: nothing to this machine, no
  ``file:`` URLs.
* The product contract is cited as "CONTRACT §N" and every such citation names a section
  (or numbered item) that docs/CONTRACT.md has; the old out-of-repository "SPEC §N"
  citations are gone.
* docs/CONTRACT.md's own facts hold: its check-digit examples are valid (by the rule as
  written there and by :mod:`symbolsvc.numbers`), and every service and RPC its §3 table
  names exists in the generated API with that name.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from helpers import reference_check_digit

from symbolsvc.numbers import validate_individual_number

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "CONTRACT.md"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"}  # noqa: S104 - a name


NOT_SOURCE_TOP = {".git", ".venv", "dev", "build"}  # made by scripts/dev, pip, ...
NOT_SOURCE = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
              ".benchmarks"}


def repo_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files (what a commit would contain); outside a
    git checkout (a source archive), every file but build and cache output."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in ROOT.rglob("*") if p.is_file() and (
            parts := p.relative_to(ROOT).parts)[0] not in NOT_SOURCE_TOP and not any(
            part in NOT_SOURCE or part.endswith(".egg-info") for part in parts))
    return sorted(ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file())


def markdown_files() -> list[Path]:
    return [p for p in repo_files() if p.suffix == ".md"]


def prose(text: str) -> str:
    """Markdown with fenced code blocks and inline code spans blanked out (line numbers kept):
    a link inside code is an example, not a link."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else re.sub(r"`[^`]*`", "``", line))
    return "\n".join(lines)


INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link in a Markdown file."""
    text = prose(path.read_text(encoding="utf-8"))
    for rx in (INLINE_LINK, REFERENCE_DEF, HTML_LINK):
        for m in rx.finditer(text):
            yield text.count("\n", 0, m.start()) + 1, m.group(1)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(path.read_text("utf-8")),
                         re.MULTILINE):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def link_problem(doc: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``doc``) is not acceptable, or None."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        if host in LOCAL_HOSTS or host.endswith(".local") or host.startswith("127."):
            return "points at a local machine"
        return None
    if parts.scheme == "mailto":
        return None
    if parts.scheme or parts.netloc:
        return f"absolute link with scheme {parts.scheme or '//'!r}"
    if parts.path.startswith("/"):
        return "absolute path (links must be relative to the document)"
    dest = (doc.parent / unquote(parts.path)).resolve() if parts.path else doc
    if not dest.is_relative_to(ROOT):
        return "leaves the repository"
    if not dest.exists():
        return "no such file in the repository"
    if parts.fragment and dest.suffix == ".md" and parts.fragment not in anchors(dest):
        return f"no heading #{parts.fragment} in {dest.relative_to(ROOT)}"
    return None


MARKDOWN = markdown_files()


def test_the_required_documents_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    assert {"README.md", "CONTRIBUTING.md", "docs/CONTRACT.md"} <= names
    assert "docs/TEAM_NOTES.md" not in names, "CONTRIBUTING.md replaces it"


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_stays_in_the_repository_and_resolves(doc: Path) -> None:
    bad = [f"{doc.relative_to(ROOT)}:{line}: {target} — {why}"
           for line, target in links(doc) if (why := link_problem(doc, target))]
    assert not bad, "broken or outside links:\n" + "\n".join(bad)


def test_link_checker_catches_what_it_must(tmp_path: Path) -> None:
    """The checker itself: each kind of bad link is reported, good ones are not."""
    doc = ROOT / "docs" / "CONTRACT.md"
    assert link_problem(doc, "../README.md") is None
    assert link_problem(doc, "../CONTRIBUTING.md#set-up") is None
    assert link_problem(doc, "#6-the-check-digit") is None
    assert link_problem(doc, "https://www.rfc-editor.org/rfc/rfc9162") is None
    assert link_problem(doc, "../../shared/SPEC.md") == "leaves the repository"
    assert link_problem(doc, "../nowhere.md") == "no such file in the repository"
    assert link_problem(doc, "#no-such-section") is not None
    assert link_problem(doc, "http://127.0.0.1:8080/x") == "points at a local machine"
    assert link_problem(doc, "file:///etc/passwd") is not None
    assert link_problem(doc, "/etc/passwd") is not None
    sample = tmp_path / "x.md"
    sample.write_text("[a](one.md) `[b](two.md)`\n```\n[c](three.md)\n```\n[d]: four.md\n")
    assert [t for _, t in links(sample)] == ["one.md", "four.md"]


# -- citations of the contract -----------------------------------------------------------

CITATION = re.compile(r"CONTRACT §(\d+)(?:\.(\d+))?")


def contract_sections() -> dict[int, set[int]]:
    """Section number -> numbers of its subsections (### N.M) or numbered items (§5)."""
    text = CONTRACT.read_text("utf-8")
    sections: dict[int, set[int]] = {}
    current = 0
    for line in text.splitlines():
        if m := re.match(r"^## (\d+)\. ", line):
            current = int(m.group(1))
            sections[current] = set()
        elif (m := re.match(r"^### (\d+)\.(\d+) ", line)) and int(m.group(1)) == current:
            sections[current].add(int(m.group(2)))
        elif (m := re.match(r"^(\d+)\. \*\*", line)) and current:
            sections[current].add(int(m.group(1)))
    return sections


def text_files() -> Iterator[tuple[Path, str]]:
    for path in repo_files():
        if path.suffix in (".py", ".md", ".proto", ".json", ".toml", ".txt", ".sh", "") and (
                "v1" not in path.relative_to(ROOT).parts[:2]):
            try:
                yield path, path.read_text("utf-8")
            except UnicodeDecodeError:
                continue


def test_contract_sections_are_numbered_one_to_nine() -> None:
    sections = contract_sections()
    assert sorted(sections) == list(range(1, 10))
    assert sections[5] == set(range(1, 7)), "§5 lists the six properties as 1..6"
    assert sections[9] >= set(range(1, 9))


def test_every_contract_citation_names_a_section() -> None:
    sections = contract_sections()
    bad = []
    for path, text in text_files():
        for m in CITATION.finditer(text):
            major, minor = int(m.group(1)), m.group(2)
            if major not in sections or (minor is not None and int(minor) not in
                                         sections[major]):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)}")
    assert not bad, "citations of sections docs/CONTRACT.md does not have:\n" + "\n".join(bad)


def test_no_citation_of_a_document_outside_the_repository() -> None:
    old = re.compile(r"\bSPEC §|shared/SPEC\.md")
    bad = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
           for path, text in text_files() if path != Path(__file__).resolve()
           for m in old.finditer(text)]
    assert not bad, "cite docs/CONTRACT.md as 'CONTRACT §N' instead:\n" + "\n".join(bad)


# -- the contract's own facts ------------------------------------------------------------


def _section(number: int) -> str:
    text = CONTRACT.read_text("utf-8")
    m = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"no section {number}"
    return m.group(0)


def test_check_digit_examples_are_valid() -> None:
    examples = re.findall(r"`(\d{12})`", _section(6))
    assert len(examples) >= 4
    for number in examples:
        assert reference_check_digit(number[:11]) == int(number[11]), number
        assert validate_individual_number(number) == number.encode("ascii")


def test_section_3_names_exactly_the_served_rpcs() -> None:
    from google.protobuf import descriptor_pool

    import symbolsvc.v1.audit_service_pb2
    import symbolsvc.v1.broker_service_pb2
    import symbolsvc.v1.disclosure_service_pb2
    import symbolsvc.v1.symbol_service_pb2  # noqa: F401 - registers the descriptors

    pool = descriptor_pool.Default()
    rows = re.findall(r"^\| `(\w+Service)` \|[^|]*\| (.*) \|$", _section(3), re.MULTILINE)
    assert {s for s, _ in rows} == {"SymbolService", "BrokerService", "DisclosureService",
                                    "AuditService"}
    for service, rpcs in rows:
        named = set(re.findall(r"`(\w+)`", rpcs))
        served = {m.name for m in pool.FindServiceByName(f"symbolsvc.v1.{service}").methods}
        assert named <= served, f"{service}: the contract names {named - served}, not served"
