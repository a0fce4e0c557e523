"""Each fact once: the README's params table lists exactly the params of params.yaml, whose values
are the dataclass defaults; the README's DeepDream presets are the code's."""

from __future__ import annotations

import dataclasses
import re

import yaml

from cnnpipe.dream.presets import PRESETS
from cnnpipe.params import Params, load_params

from .pipeline import REPO

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out |= _leaves(value, f"{name}.") if isinstance(value, dict) and value else {name}
    return out


def test_the_readme_params_table_lists_exactly_the_params() -> None:
    rows = [line for line in _section("Parameters").splitlines() if line.startswith("| `")]
    documented = [name for row in rows for name in re.findall(r"`([\w.]+)`", row.split(" | ")[0])]
    assert len(documented) == len(set(documented)), "a param is documented twice"
    yaml_params = _leaves(yaml.safe_load((REPO / "params.yaml").read_text()))
    missing, extra = sorted(yaml_params - set(documented)), sorted(set(documented) - yaml_params)
    assert not missing and not extra, f"README lacks {missing}; params.yaml lacks {extra}"


def test_params_yaml_holds_the_code_defaults() -> None:
    params = load_params(REPO / "params.yaml")
    for field in dataclasses.fields(Params):
        if field.default_factory is not dataclasses.MISSING:
            assert getattr(params, field.name) == field.default_factory(), field.name
        elif field.default is not dataclasses.MISSING:
            assert getattr(params, field.name) == field.default, field.name


def test_the_readme_presets_are_the_code_presets() -> None:
    rows = [line.split(" | ") for line in _section("DeepDream").splitlines() if re.match(r"\| `\w+`", line)]
    shown = {}
    for cells in rows:
        name = re.search(r"`(\w+)`", cells[0]).group(1)
        octaves, scale = (x.strip() for x in cells[1].split("×"))
        shown[name] = (int(octaves), float(scale), int(cells[2]), float(cells[3]), int(cells[4]))
    assert shown == {n: (p.octaves, p.octave_scale, p.steps, p.lr, p.jitter) for n, p in PRESETS.items()}
