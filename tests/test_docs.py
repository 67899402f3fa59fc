"""The repository's documentation stands alone (no paths outside the checkout, citations that resolve, live links).

* No tracked file outside ``tests/`` refers to ``../shared`` (the workspace the project was written in).
* Every ``REFERENCE §N.N`` citation in a tracked file names a heading of docs/REFERENCE.md (``## N.``,
  ``### N.N``, ``## Appendix X.``); ``§8.2-N`` / ``§8.2 item N`` also name an existing numbered item.
* Every relative markdown link in README.md and docs/*.md (and the other tracked .md files) points to an existing
  file, and a ``#fragment`` to a heading of the target.

Each failure names the offending ``file:line``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DOC = ROOT / "docs" / "REFERENCE.md"
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Built from pieces so that this file does not match its own searches.
SHARED = "../" + "shared"
DEAD_CITATIONS = ("spec " + "§", "DESIGN " + "§", "DESIGN" + ".md")


@lru_cache(maxsize=1)
def _tracked_text_files() -> tuple[tuple[str, str], ...]:
    """(path relative to the root, text) of every tracked, non-binary file; skips outside a git checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proc = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        pytest.skip(f"{ROOT} is not a git checkout")
    files = []
    for rel in proc.stdout.decode().split("\0"):
        path = ROOT / rel
        if not rel or not path.is_file():
            continue  # deleted in the working tree, or a submodule
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            files.append((rel, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return tuple(files)


def _lines(text: str):
    return enumerate(text.splitlines(), start=1)


# ---------------------------------------------------------------------------------------------------------------
# (a) nothing outside tests/ refers to ../shared


def test_no_reference_to_the_shared_workspace_outside_tests():
    bad = [
        f"{rel}:{no}: {line.strip()}"
        for rel, text in _tracked_text_files()
        if not rel.startswith("tests/")
        for no, line in _lines(text)
        if SHARED in line
    ]
    assert not bad, f"tracked files refer to {SHARED} (dead in a clone):\n" + "\n".join(bad)


def test_no_citation_of_documents_outside_the_repository():
    """Citations use REFERENCE §N.N (docs/REFERENCE.md) or docs/ARCHITECTURE.md, not the workspace's documents."""
    bad = [
        f"{rel}:{no}: {line.strip()}"
        for rel, text in _tracked_text_files()
        if rel != THIS_FILE
        for no, line in _lines(text)
        if any(dead in line for dead in DEAD_CITATIONS)
    ]
    assert not bad, "citations of documents that are not in the repository:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------------------------------
# (b) REFERENCE §N.N citations resolve


_HEADING = re.compile(r"^(#{2,3})\s+(?:(\d+)\.(?:\s|$)|(\d+\.\d+)\s|Appendix\s+([A-Z])\.)")
_ITEM = re.compile(r"^(\d+)\.\s")


@lru_cache(maxsize=1)
def reference_sections() -> tuple[frozenset[str], dict[str, frozenset[int]]]:
    """Section ids of docs/REFERENCE.md ("2", "2.3", "A") and the top-level numbered items of each section."""
    sections: set[str] = set()
    items: dict[str, set[int]] = {}
    current = None
    for line in REFERENCE_DOC.read_text(encoding="utf-8").splitlines():
        m = _HEADING.match(line)
        if m:
            current = m.group(2) or m.group(3) or m.group(4)
            sections.add(current)
            continue
        if line.startswith("#"):
            current = None
        elif current is not None and (mi := _ITEM.match(line)):
            items.setdefault(current, set()).add(int(mi.group(1)))
    return frozenset(sections), {k: frozenset(v) for k, v in items.items()}


def test_reference_doc_has_the_cited_numbering():
    sections, items = reference_sections()
    expected = {str(n) for n in range(9)} | {
        "1.1",
        "1.13",
        "2.7",
        "3.3",
        "4.13",
        "5.5",
        "6.3",
        "8.7",
        "A",
        "B",
        "C",
    }
    assert expected <= sections, f"docs/REFERENCE.md lacks headings {sorted(expected - sections)}"
    assert items.get("8.2") == frozenset(range(1, 22)), "docs/REFERENCE.md §8.2 must number its 21 bugs 1..21"


_SEC = r"(?:Appendix\s+)?[A-Z](?![\w.])|\d+(?:\.\d+)?"
_ITEMS = r"-(?P<dash>\d+)(?![\d.])|\s+items?\s+(?P<words>\d+(?:(?:\s*,\s*|\s+and\s+|/)\d+)*)"
_FIRST = re.compile(rf"REFERENCE §(?P<sec>{_SEC})(?:{_ITEMS})?")
# a further section in the same citation: ", §X", " / §X", " and §X", or a range "–X" / "–§X"
_MORE = re.compile(rf"(?:\s*(?:,|/|and)\s*§|\s*–\s*§?)(?P<sec>{_SEC})(?:{_ITEMS})?")


def parse_citations(line: str) -> list[tuple[str, list[int]]]:
    """[(section id, item numbers)] of every ``REFERENCE §…`` citation group in ``line``."""
    found = []
    for m in _FIRST.finditer(line):
        pos, cur = m.end(), m
        while True:
            sec = cur.group("sec").removeprefix("Appendix").strip()
            nums = cur.group("dash") or cur.group("words") or ""
            found.append((sec, [int(n) for n in re.findall(r"\d+", nums)]))
            nxt = _MORE.match(line, pos)
            if nxt is None:
                break
            pos, cur = nxt.end(), nxt
    return found


def test_citation_parser():
    assert parse_citations("see REFERENCE §2.3.") == [("2.3", [])]
    assert parse_citations("(REFERENCE §4.9, §8.2-2)") == [("4.9", []), ("8.2", [2])]
    assert parse_citations("REFERENCE §1.4–1.6, §2 wherever") == [("1.4", []), ("1.6", []), ("2", [])]
    assert parse_citations("REFERENCE §8.2 items 4, 5) and") == [("8.2", [4, 5])]
    assert parse_citations("REFERENCE §8.2 items 1 and 3.") == [("8.2", [1, 3])]
    assert parse_citations("REFERENCE §4.2/§4.5 and REFERENCE §Appendix A") == [
        ("4.2", []),
        ("4.5", []),
        ("A", []),
    ]


def test_every_reference_citation_resolves():
    sections, items = reference_sections()
    bad, count = [], 0
    for rel, text in _tracked_text_files():
        if rel == THIS_FILE:
            continue
        for no, line in _lines(text):
            for sec, nums in parse_citations(line):
                count += 1
                if sec not in sections:
                    bad.append(f"{rel}:{no}: REFERENCE §{sec} is not a heading of docs/REFERENCE.md")
                missing = [n for n in nums if n not in items.get(sec, ())]
                if sec in sections and missing:
                    bad.append(f"{rel}:{no}: REFERENCE §{sec} has no numbered item {missing}")
    assert count > 100, f"only {count} citations found: the parser no longer matches the convention"
    assert not bad, "citations that do not resolve:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------------------------------
# (c) relative markdown links point to existing files (and headings)


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`]*`")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    out = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            out.add(github_slug(m.group(1)))
    return out


def _markdown_files() -> list[Path]:
    files = {ROOT / "README.md", *(ROOT / "docs").glob("*.md")}
    try:
        files |= {ROOT / rel for rel, _ in _tracked_text_files() if rel.endswith(".md")}
    except pytest.skip.Exception:
        pass  # outside a git checkout: README.md and docs/*.md only
    return sorted(p for p in files if p.is_file())


def test_github_slug():
    assert github_slug("Evaluation through lmms-eval 0.7.3") == "evaluation-through-lmms-eval-073"
    assert github_slug("3.1 `config.json`") == "31-configjson"


def test_relative_markdown_links_resolve():
    bad, count = [], 0
    for md in _markdown_files():
        rel_md = md.relative_to(ROOT).as_posix()
        in_fence = False
        for no, line in _lines(md.read_text(encoding="utf-8")):
            if line.startswith("```"):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            for target in _LINK.findall(_CODE_SPAN.sub("", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # http:, https:, mailto:
                count += 1
                file_part, _, fragment = target.partition("#")
                dest = (md.parent / file_part).resolve() if file_part else md
                if not dest.exists():
                    bad.append(f"{rel_md}:{no}: link to {target}: {file_part} does not exist")
                elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
                    bad.append(
                        f"{rel_md}:{no}: link to {target}: no heading #{fragment} in {file_part or rel_md}"
                    )
    assert count > 0, "no relative links found: the link pattern no longer matches"
    assert not bad, "broken markdown links:\n" + "\n".join(bad)
