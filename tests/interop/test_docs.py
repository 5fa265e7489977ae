"""The README stays a short user's guide, and the documentation's relative links work:
every link in README.md and docs/*.md names an existing file, and an anchor names a
heading of the target Markdown file (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target); a target ends at white space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def heading_ids(path: Path) -> set[str]:
    """GitHub's ids of a Markdown file's headings: lower case, punctuation other than
    '-' and '_' dropped, spaces to '-', repeated ids numbered -1, -2, ..."""
    ids: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text(encoding="utf-8")))


def test_readme_is_a_short_guide_with_the_two_quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300, "README.md should stay under 300 lines: move details to docs/"
    assert "bash scripts/demo.sh" in text and "bash scripts/test.sh" in text


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        found = links(page)
        assert found or page.name != "README.md", "no links found in README.md: the pattern is wrong"
        for target in found:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            path_part, _, anchor = target.partition("#")
            path = (page.parent / unquote(path_part)).resolve() if path_part else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not path.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in heading_ids(path):
                broken.append(f"{where} (no heading #{anchor} in {path.relative_to(ROOT)})")
    assert not broken, "broken links:\n" + "\n".join(broken)
