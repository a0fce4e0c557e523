"""The runs to compare: commits and DVC experiments of a repository, or the model a server holds,
each with its metrics per file and its params.

Rows come from ``dvc.api.exp_show`` (commits, experiments and their baselines, as ``dvc exp show``
lists them). Their values come from the repository's ``metrics.show`` / ``params.show`` for all
revisions at once, the calls behind ``dvc.api.metrics_show`` / ``params_show``: those two merge every
file into one dict and prefix a key with its file only when two files share it, so which file
(which SR scale) a value belongs to would be lost; per file, nothing is. The DVCLive training curves
(for the HTML report) come from ``plots.show``: :mod:`~cnnpipe.compare.curves`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from cnnpipe import paths
from cnnpipe.compare.curves import Curves, training_curves
from cnnpipe.errors import CnnpipeError

UNFINISHED = {"Queued": "still queued", "Running": "still running", "Failed": "that failed"}  # state → why left out
NAMED = 5  # rows named in a "left out" note; the rest are counted


@dataclasses.dataclass(frozen=True)
class Run:
    """One row: a commit, an experiment, the uncommitted workspace or a running server's models."""

    label: str
    """What the user calls it: the REV given, an experiment's name, a commit's short sha, "workspace"."""
    kind: str  # commit | experiment | workspace | server
    rev: str  # short sha (the server's model's commit); "" for the workspace
    message: str  # commit subject; for an experiment, its baseline commit; for a server, its URL
    metrics: dict[str, dict[str, Any]]  # metrics file (relative path) → its content
    params: dict[str, Any]  # params.yaml, nested
    curves: Curves = dataclasses.field(default_factory=dict)  # DVCLive per-epoch values, when asked for


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def flat_params(run: Run) -> dict[str, Any]:
    """``classifier.epochs``-style names, as ``dvc params diff`` prints them; lists as YAML-ish text."""
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in _flatten(run.params).items()}


def _open_repo(repo: Path) -> Any:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(repo))
    except NotDvcRepoError:
        raise CnnpipeError(f"{Path(repo).resolve()} is not a DVC repository (no .dvc/ here or above)") from None


def _file_data(rev: str, label: str, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{file: content}`` of one revision; a metrics file that exists but cannot be read is an error."""
    files: dict[str, dict[str, Any]] = {}
    for file, entry in result.get(rev, {}).get("data", {}).items():
        if "error" in entry:
            if isinstance(entry["error"], FileNotFoundError) or "No such file" in str(entry["error"]):
                continue  # not written at that commit (a scale added later, say)
            raise CnnpipeError(f"{file} at {label} cannot be read: {_one_line(entry['error'])}")
        files[file] = entry.get("data", {})
    return files


def _one_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _unwrap_params(result: dict[str, Any], rev: str) -> dict[str, Any]:
    data = result.get(rev, {}).get("data", {})
    entry = data.get(str(paths.PARAMS), {})
    return dict(entry.get("data", {})) if "error" not in entry else {}


def left_out(kind: str, why: str, names: list[str]) -> str:
    """One note for all the rows of a kind left out for one reason, ``10 commits without metrics left
    out: a1b2c3d, …``: the first few named (newest first, as ``exp show`` lists them), the rest counted."""
    named = ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")
    return f"{len(names)} {kind}{'s' if len(names) > 1 else ''} {why} left out: {named}"


def repo_runs(
    repo: Path = Path(),
    revs: list[str] | None = None,
    num: int = 10,
    experiments: bool = False,
    curves: bool = False,
) -> tuple[list[Run], list[str]]:
    """Runs oldest first (an experiment after its baseline commit, the workspace last if its metrics
    differ from HEAD's), and notes about rows left out (commits without metrics, queued experiments).

    ``revs`` names commits, branches, tags or experiments (each must have metrics); without them,
    the last ``num`` commits from HEAD (all if ``num`` < 0). ``curves`` reads the DVCLive training
    curves too (for the HTML report).
    """
    import dvc.api
    from dvc.scm import RevError

    dvc_repo = _open_repo(repo)
    with dvc_repo:
        root = dvc_repo.root_dir
        try:
            rows = dvc.api.exp_show(root, revs=revs, num=1 if revs else num)
        except RevError as exc:
            raise CnnpipeError(f"{_one_line(exc)} in {root}") from None
        scm = dvc_repo.scm
        skipped: dict[tuple[str, str], list[str]] = {}  # (kind, why) → labels left out
        picked: list[tuple[dict[str, Any], str]] = []  # (row, label)
        given = iter(revs or [])
        baseline_message = ""
        for row in rows:
            if row["rev"] == "workspace":
                picked.append((row, "workspace"))
            elif row["Experiment"] is None and row["typ"] == "baseline":
                label = next(given, None) or row["rev"]
                picked.append((row, label))
            elif experiments and row.get("State") not in UNFINISHED:
                picked.append((row, row["Experiment"] or row["rev"]))
            elif experiments:
                skipped.setdefault(("experiment", UNFINISHED[row["State"]]), []).append(row["Experiment"] or row["rev"])
        revisions = [row["rev"] for row, _ in picked]
        metrics = dvc_repo.metrics.show(revs=revisions, on_error="return")
        params = dvc_repo.params.show(revs=revisions, on_error="return")
        plots = training_curves(dvc_repo, revisions) if curves else {}

        runs: list[Run] = []
        for row, label in picked:
            rev = row["rev"]
            files = _file_data(rev, label, metrics)
            sha = scm.resolve_rev(rev)[:7] if rev != "workspace" else ""
            if row["rev"] == "workspace":
                kind, message = "workspace", "uncommitted"
            elif row["Experiment"] is None and row["typ"] == "baseline":
                kind = "commit"
                commit = scm.resolve_commit(rev)
                message = commit.message.strip().splitlines()[0] if commit.message.strip() else ""
                baseline_message = f"experiment on {sha}"
            else:
                kind, message = "experiment", baseline_message
            if not files:
                if revs and kind != "workspace":
                    raise CnnpipeError(
                        f"{label} has no metrics: run `dvc repro` there and commit dvc.lock and metrics/"
                    )
                if kind != "workspace":
                    skipped.setdefault((kind, "without metrics"), []).append(sha if kind == "commit" else label)
                continue
            runs.append(Run(label, kind, sha, message, files, _unwrap_params(params, rev), plots.get(rev, {})))
    notes = [left_out(kind, why, names) for (kind, why), names in skipped.items()]
    return _chronological(runs, explicit=bool(revs)), notes


def short_sha(repo: Path, rev: str) -> str | None:
    """``rev``'s short sha, or None where git does not know it (an experiment's name, say)."""
    from scmrepo.exceptions import RevError
    from scmrepo.git import Git

    try:
        with Git(str(repo)) as scm:
            return scm.resolve_rev(rev)[:7]
    except (RevError, OSError, ValueError):
        return None


def _chronological(runs: list[Run], explicit: bool) -> list[Run]:
    """exp_show lists newest first (commits, and each commit's experiments), experiments after their
    baseline; keep the REVs as the user gave them."""
    workspace = [r for r in runs if r.kind == "workspace"]
    others = [r for r in runs if r.kind != "workspace"]
    if not explicit:
        groups: list[list[Run]] = []
        for run in others:
            if run.kind == "commit" or not groups:
                groups.append([run])
            else:
                groups[-1].append(run)
        # A group is a commit (if it has metrics) and its experiments, newest first: flip both.
        others = [run for group in reversed(groups) for run in _oldest_first(group)]
    head = next((r for r in reversed(others) if r.kind == "commit"), None) if not explicit else None
    if workspace and head is not None and workspace[0].metrics == head.metrics:
        workspace = []
    if explicit:
        workspace = []  # only what was asked for
    return others + workspace


def _oldest_first(group: list[Run]) -> list[Run]:
    commits = [run for run in group if run.kind == "commit"]
    return commits + [run for run in reversed(group) if run.kind != "commit"]


def server_run(url: str, token: str | None = None, timeout: float = 30.0) -> Run:
    """The models a running cnnpipe server holds, from its ``/metadata`` provenance."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url.rstrip("/") + "/metadata", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise CnnpipeError(f"cannot reach the server at {url}: {_one_line(exc)}") from None
    if response.status_code != 200:
        raise CnnpipeError(f"{url}/metadata answered {response.status_code}: {response.text[:200]}")
    metrics: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    commits: set[str] = set()
    for model in response.json().get("models", []):
        provenance = model.get("provenance")
        if not provenance:
            continue
        name = model["name"]
        file = paths.CLASSIFIER_METRICS if name == "classifier" else paths.sr_metrics(int(name.removeprefix("sr_x")))
        metrics[str(file)] = provenance.get("metrics", {})
        _merge(params, provenance.get("params", {}))
        commits.add(provenance.get("commit", "")[:7] + ("+dirty" if provenance.get("dirty") else ""))
    if not metrics:
        raise CnnpipeError(f"{url} serves models without provenance: export them again with this version")
    return Run(f"server {url}", "server", ", ".join(sorted(commits)), url, metrics, params)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into.setdefault(key, value)
