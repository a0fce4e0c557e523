"""Each fact once, and every link alive: the params table (docs/pipeline.md) lists exactly the params
of params.yaml, whose values are the dataclass defaults; the DeepDream presets table
(docs/looking-inside.md) is the code's; every relative link and anchor of the Markdown resolves."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cnnpipe.dream.presets import PRESETS
from cnnpipe.params import Params, load_params

from .pipeline import REPO

PIPELINE = REPO / "docs" / "pipeline.md"
LOOKING_INSIDE = REPO / "docs" / "looking-inside.md"


def _section(page: Path, title: str) -> str:
    text = page.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out |= _leaves(value, f"{name}.") if isinstance(value, dict) and value else {name}
    return out


def test_the_readme_params_table_lists_exactly_the_params() -> None:
    rows = [line for line in _section(PIPELINE, "Parameters").splitlines() if line.startswith("| `")]
    documented = [name for row in rows for name in re.findall(r"`([\w.]+)`", row.split(" | ")[0])]
    assert len(documented) == len(set(documented)), "a param is documented twice"
    yaml_params = _leaves(yaml.safe_load((REPO / "params.yaml").read_text()))
    missing, extra = sorted(yaml_params - set(documented)), sorted(set(documented) - yaml_params)
    assert not missing and not extra, f"docs/pipeline.md lacks {missing}; params.yaml lacks {extra}"


def test_params_yaml_holds_the_code_defaults() -> None:
    params = load_params(REPO / "params.yaml")
    for field in dataclasses.fields(Params):
        if field.default_factory is not dataclasses.MISSING:
            assert getattr(params, field.name) == field.default_factory(), field.name
        elif field.default is not dataclasses.MISSING:
            assert getattr(params, field.name) == field.default, field.name


def test_the_readme_presets_are_the_code_presets() -> None:
    table = _section(LOOKING_INSIDE, "DeepDream").splitlines()
    rows = [line.split(" | ") for line in table if re.match(r"\| `\w+`", line)]
    shown = {}
    for cells in rows:
        name = re.search(r"`(\w+)`", cells[0]).group(1)
        octaves, scale = (x.strip() for x in cells[1].split("×"))
        shown[name] = (int(octaves), float(scale), int(cells[2]), float(cells[3]), int(cells[4]))
    assert shown == {n: (p.octaves, p.octave_scale, p.steps, p.lr, p.jitter) for n, p in PRESETS.items()}


def _markdown_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link-like string in code is not a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped, spaces to
    hyphens, ``-1``, ``-2`` … for repeats."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", _prose(text), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def relative_links(text: str) -> list[str]:
    found = re.findall(r"\]\(([^)\s]+)\)", _prose(text)) + re.findall(r'<img [^>]*src="([^"]+)"', _prose(text))
    return [link for link in found if not re.match(r"[a-z]+:", link)]


def test_the_anchor_rules_are_githubs() -> None:
    anchors = github_anchors("# A\n## Two commands, then `make serve`\n## Parameters (`params.yaml`)\n## A\n")
    assert anchors == {"a", "two-commands-then-make-serve", "parameters-paramsyaml", "a-1"}
    assert relative_links("[x](docs/a.md#b) [y](https://e.org) ![z](p.png)\n```\n[no](code.md)\n```\n") == [
        "docs/a.md#b",
        "p.png",
    ]


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    dead = []
    for link in relative_links(page.read_text()):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            dead.append(f"{link}: no {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        elif anchor and path.suffix == ".md" and anchor not in github_anchors(path.read_text()):
            dead.append(f"{link}: no heading #{anchor} in {path.relative_to(REPO)}")
    assert not dead, f"{page.relative_to(REPO)}: dead links {dead}"
