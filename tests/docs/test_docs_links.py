"""Every relative link in README.md and docs/*.md leads somewhere: an existing
file, and for `page.md#anchor` a heading of that page. And every page in
docs/ can be reached from the README by following links.

Anchors follow GitHub's rules, which the github-slugger package implements
(https://github.com/Flet/github-slugger, index.js and test/fixtures.json):
the heading's text lower-cased, every character that is not a letter, a
digit, `_`, `-` or a space removed, each space turned into `-` (runs are not
collapsed: "a - b" is `a---b`), and a repeated anchor on one page suffixed
`-1`, `-2`, ...
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _kept(char: str) -> bool:
    return char in "_- " or unicodedata.category(char)[0] in "LNM"


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading counts by its text
    text = re.sub(r"<[^>]+>", "", text)
    return "".join(c for c in text.strip().lower() if _kept(c)).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = slug(match.group(2))
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        found.add(anchor)
    return found


def links(page: Path) -> list[str]:
    """Link targets outside code, by paragraph: a link's text may wrap onto the next line."""
    found = []
    for paragraph in "\n".join(prose_lines(page.read_text(encoding="utf-8"))).split("\n\n"):
        found += _LINK.findall(re.sub(r"`[^`]*`", "", paragraph))
    return found


def test_a_link_whose_text_wraps_is_still_checked(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [the\nfailure path](#failures) and `[not](code.md)`.\n\n```\n[nor](this.md)\n```\n")
    assert links(page) == ["#failures"]


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target)


def test_anchors_follow_githubs_rules():
    assert slug("Dataset spec (`datasets/*.json`)") == "dataset-spec-datasetsjson"
    assert slug("request_approval (`lambda:invoke.waitForTaskToken`)") == "request_approval-lambdainvokewaitfortasktoken"
    assert slug("Two runs - the new one") == "two-runs---the-new-one"
    assert slug("What [it](x.md) prints, and report.json") == "what-it-prints-and-reportjson"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    broken = []
    for target in filter(relative, links(page)):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: {destination.relative_to(REPO_ROOT)} has no heading with that anchor")
    assert not broken, f"{page.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [REPO_ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in filter(relative, links(page)):
            path = target.partition("#")[0]
            destination = (page.parent / path).resolve() if path else page
            if destination.suffix == ".md" and destination.exists():
                todo.append(destination)
    unreached = [str(page.relative_to(REPO_ROOT)) for page in PAGES if page.resolve() not in reached]
    assert not unreached, f"no link from README.md leads to {unreached}"
