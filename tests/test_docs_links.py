"""The README and docs/*.md (issue 21): every relative link resolves, to a file of the repository and, where
it names one, to a heading of that page (GitHub's anchors); the README stays short enough to read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def pages() -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, repeated headings numbered as GitHub numbers them (-1, -2, ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> Iterator[str]:
    """The link targets of a page: markdown links and images, HTML img/a."""
    text = prose(page.read_text(encoding="utf-8"))
    yield from MD_LINK.findall(text)
    yield from HTML_LINK.findall(text)


def broken(page: Path, root: Path = REPO) -> list[str]:
    """Each relative link of a page that names no file under root (the repository), or no heading of its page."""
    problems = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        name = page.relative_to(root)
        if not dest.is_relative_to(root) or not dest.exists():
            problems.append(f"{name}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment.lower() not in anchors(dest):
            problems.append(f"{name}: {target}: no heading #{fragment} in {dest.relative_to(root)}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken(page) == []


def test_readme_is_short() -> None:
    n = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}: the rest goes in docs/)"


def test_readme_gives_the_test_commands() -> None:
    """.ci/run runs `make test`, the README's test command; `make test-fast` is the development lane."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", text, re.MULTILINE)
    assert "make test-fast" in text
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_slug_follows_github() -> None:
    assert slug("Region features (`region_cnn`, `regions`)") == "region-features-region_cnn-regions"
    assert slug("Real photos at scale (Flickr8k, Flickr30k, COCO)") == "real-photos-at-scale-flickr8k-flickr30k-coco"
    assert slug("Region descriptions (§4.3): `a`, `b`") == "region-descriptions-43-a-b"
    assert slug("COCO's own caption files") == "cocos-own-caption-files"


def test_broken_links_are_found(tmp_path: Path) -> None:
    """The checker itself: a missing file, a missing heading, a link out of the repository; code is no link."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Part (`a`, b)\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# Top\n\n[ok](docs/other.md#part-a-b) [self](#top) <img src=\"docs/pic.png\">\n"
        "[gone](docs/gone.md) [nowhere](docs/other.md#nowhere) [out](../x.md) [web](https://dvc.org/#x)\n"
        "`[code](code.md)`\n```\n[fenced](fenced.md)\n```\n",
        encoding="utf-8",
    )
    (tmp_path / "docs" / "pic.png").write_bytes(b"")
    assert broken(tmp_path / "README.md", tmp_path) == [
        "README.md: docs/gone.md: no such file",
        "README.md: docs/other.md#nowhere: no heading #nowhere in docs/other.md",
        "README.md: ../x.md: no such file",
    ]
