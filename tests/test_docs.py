"""The documentation's links: every relative link in the README, docs/, the benchmarks' page, the
model cards and the top-level pages names a file or folder that exists (mkdocs cannot check these:
most point at code and results outside docs/)."""

import re

import pytest

from conftest import REPO

PAGES = sorted(
    [
        REPO / "README.md",
        REPO / "CHANGELOG.md",
        REPO / "CONTRIBUTING.md",
        REPO / "RELIABILITY.md",
        REPO / "benchmarks" / "README.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "diverse_embed" / "pretrained").glob("*/README.md"),
    ]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_a_file_that_exists(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code is not a link
    broken = [
        target
        for target in LINK.findall(text)
        if not re.match(r"^(https?:|mailto:|#)", target) and not (page.parent / target.split("#")[0]).exists()
    ]
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 220


def test_every_result_outside_research_can_be_rerun_from_the_repository():
    """A committed result's command names no folder of one machine (a home, a scratch or run folder):
    research runs, which do, live under benchmarks/results/research/."""
    machine_paths = re.compile(r"(?<![\w.])(/root/|/work/|/tmp/|~/|runs/)")
    for path in (REPO / "benchmarks" / "results").rglob("*.md"):
        if "research" in path.relative_to(REPO).parts:
            continue
        for command in re.findall(r"Command: `([^`]*)`", path.read_text()):
            assert not machine_paths.search(command), f"{path.relative_to(REPO)}: {command}"
