"""Runs compared and models shared, on a real git + DVC history built here: two commits of the tiny
pipeline with different params, pushed to the project's default remote (HOME is a temp dir, so
``~/.cache/cnnpipe/dvc-storage`` is too), then `cnnpipe compare`, `dvc pull` into a fresh clone that
the servers start from, `dvc artifacts get` by revision and GTO stage, and queued experiments."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pandas as pd
import pytest

from cnnpipe.serve.v1 import inference_pb2 as pb
from cnnpipe.serve.v1 import inference_pb2_grpc as pb_grpc
from serving.launch import bentoml_server, grpc_server

from .pipeline import Reproduced, dvc, edit_params, env, git

pytestmark = pytest.mark.slow

MODELS = ("classifier.onnx", "classifier.pt", "sr_x2.onnx", "sr_x3.onnx")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class History:
    """The repo, its temp HOME (where the default remote lives) and what each commit produced."""

    def __init__(self, repo: Path, home: Path) -> None:
        self.repo, self.home = repo, home
        self.commits: list[str] = []  # run 1, run 2
        self.models: list[dict[str, str]] = []  # file → sha256, per commit
        self.accuracy: list[float] = []

    def dvc(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return dvc(cwd or self.repo, *args, check=check, HOME=str(self.home))

    def record(self, message: str) -> None:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", message)
        self.commits.append(git(self.repo, "rev-parse", "HEAD").strip())
        self.models.append({name: _sha256(self.repo / "models" / name) for name in MODELS})
        self.accuracy.append(json.loads((self.repo / "metrics/classifier.json").read_text())["accuracy"])
        self.dvc("push", "-q")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, reproduced: Reproduced) -> History:
    # commit 0 ("tiny params", no metrics yet), and the suite's tiny `dvc repro` of it not committed
    repo = reproduced.copy_to(tmp_path_factory.mktemp("history") / "repo")
    runs = History(repo, tmp_path_factory.mktemp("home"))
    runs.record("run 1")
    edit_params(repo, {"classifier": {"epochs": 3}})
    runs.dvc("repro", "-q")
    runs.record("run 2: 3 epochs")
    return runs


def compare(repo: Path, *args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cnnpipe.cli", "compare", *args],
        cwd=repo,
        env=env(repo, **extra_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _csv(result: subprocess.CompletedProcess[str]) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(result.stdout), dtype={"rev": str})


# ---------------------------------------------------------------------------------------- compare


def test_compare_lists_commits_oldest_first_with_the_params_that_differ_and_deltas(history: History) -> None:
    result = compare(history.repo, "--format", "csv")
    table = _csv(result)
    assert list(table["rev"]) == [c[:7] for c in history.commits]
    assert list(table["message"]) == ["run 1", "run 2: 3 epochs"]
    assert list(table["classifier.epochs"]) == [2, 3]
    assert "classifier.lr" not in table.columns  # the same in every row
    assert list(table["accuracy"]) == pytest.approx(history.accuracy)
    assert list(table["Δ accuracy"]) == pytest.approx([0.0, history.accuracy[1] - history.accuracy[0]])
    for scale in (2, 3):
        assert table[f"x{scale} bsds300_test PSNR"].notna().all()
        assert table[f"Δ x{scale} bsds300_test SSIM"].notna().all()
    assert (table["ONNX max abs diff"] < 1e-4).all()
    first = git(history.repo, "rev-parse", "--short=7", "HEAD~2").strip()  # commit 0: no metrics yet
    assert result.stderr == f"note: 1 commit without metrics left out: {first}\n"


def test_compare_in_a_terminal_reads_at_a_glance(history: History) -> None:
    """120 columns, the run named in every block, ints as ints; one run alone has no param columns."""
    text = compare(history.repo).stdout
    assert max(map(len, text.splitlines())) <= 120
    blocks = [block.splitlines() for block in text.strip().split("\n\n")]
    labels = list(_csv(compare(history.repo, "--format", "csv"))["run"])  # HEAD's is its branch's name
    for block in blocks:  # the run column repeats in every block, the baseline marked
        rows = block[next(i for i, line in enumerate(block) if line.startswith("---")) + 1 :]
        assert [row.split()[0] for row in rows] == labels and "(baseline)" in rows[0]
    head = blocks[0]
    assert head[0].split()[:5] == ["run", "kind", "rev", "message", "classifier.epochs"]
    end = head[0].index("classifier.epochs") + len("classifier.epochs")  # right-aligned under its header
    assert [line[end - 5 : end].strip() for line in head[2:]] == ["2", "3"]  # not 2.0, 3.0
    assert "x3 bsds300_test" in text and "ONNX max abs diff" in text
    wide = compare(history.repo, "--wide").stdout.splitlines()
    assert len(wide) == 4 and max(map(len, wide)) > 120 and "ONNX max abs diff" in wide[0]

    alone = _csv(compare(history.repo, "-n", "1", "--format", "csv"))
    assert list(alone.columns[:5]) == ["run", "kind", "rev", "message", "accuracy"]  # nothing differs
    chosen = _csv(compare(history.repo, "--params", "classifier.*", "--params", "sr.scales", "--format", "csv"))
    assert list(chosen["classifier.lr"]) == [0.4, 0.4] and list(chosen["sr.scales"]) == ["[2, 3]", "[2, 3]"]
    assert list(chosen["classifier.widths"]) == ["[8, 16, 16]"] * 2 and "sr.epochs" not in chosen.columns

    lines = compare(history.repo, "--transpose").stdout.splitlines()
    assert lines[0].split() == ["run", labels[0], "(baseline)", labels[1]]
    epochs = next(line for line in lines if line.startswith("classifier.epochs"))
    assert epochs.split() == ["classifier.epochs", "2", "3"]


def test_compare_markdown_for_a_review_comment(history: History) -> None:
    text = compare(history.repo, "--format", "md", "--baseline", "HEAD").stdout
    lines = text.strip().splitlines()
    assert lines[0].startswith("| run") and set(lines[1]) <= set("|:- ")
    assert len(lines) == 2 + 2 and all(line.count("|") == lines[0].count("|") for line in lines)
    head_row = next(line for line in lines if history.commits[1][:7] in line)
    assert "(baseline)" in head_row
    old_row = next(line for line in lines if history.commits[0][:7] in line)
    delta = history.accuracy[0] - history.accuracy[1]
    assert f"{history.accuracy[0]:.4f} ({delta:+.4f})" in old_row


def test_compare_per_class_and_explicit_revisions(history: History) -> None:
    table = _csv(compare(history.repo, history.commits[1], history.commits[0][:8], "--per-class", "--format", "csv"))
    assert list(table["run"]) == [history.commits[1], history.commits[0][:8]]  # as given; the first is the baseline
    classes = [c for c in table.columns if c.startswith("accuracy[")]
    assert len(classes) == 10 and table["Δ accuracy"].iloc[0] == 0.0


def test_compare_html_report_is_self_contained(history: History, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = compare(history.repo, "--format", "html", "--out", str(out))
    assert "wrote" in result.stdout
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr class=") == 2
    assert page.count('<tr class="baseline">') == 1 and f"<td>{history.commits[0][:7]} (baseline)</td>" in page
    charts = re.findall(r'<figure class="chart" data-metric="([^"]+)"><svg', page)
    assert {"accuracy", "x3 bsds300_test PSNR", "ONNX max abs diff"} <= set(charts)
    # The DVCLive curves of both commits, per model: two runs' lines on each loss and accuracy panel.
    curves = dict(re.findall(r'<figure class="curves" data-model="([^"]+)">(<svg.*?</svg>)\s*</figure>', page, re.S))
    assert set(curves) == {"classifier", "sr_x2", "sr_x3"}
    first, head = _csv(compare(history.repo, "--format", "csv"))["run"]  # HEAD's label is its branch
    for model, svg in curves.items():  # matplotlib's SVG keeps each text as a comment: the legends
        assert svg.count(f"<!-- {first} (baseline) -->") == 2 and svg.count(f"<!-- {head} -->") == 2, model
    assert '<th data-type="number" title="sort">accuracy</th>' in page  # sorted by value on a click
    # Nothing to fetch: the one script is inline; no stylesheets, images or fonts from anywhere.
    assert page.count("<script>") == 1 and not re.search(r"<script[^>]*src|fetch\(|XMLHttpRequest|import\(", page)
    assert not re.search(r"<link|<img|@import|url\((?!#)", page)  # url(#clip) is in-page (SVG namespaces aside)
    assert not re.search(r'(src|href)="https?:', page)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-rev"], "unknown Git revision 'no-such-rev'"),
        (["HEAD~2"], "HEAD~2 has no metrics"),
        (["--baseline", "no-such-rev"], "--baseline no-such-rev is not one of the compared runs"),
        (["-n", "0"], "-n must be at least 1"),
        (["--server", "http://127.0.0.1:9"], "cannot reach the server at http://127.0.0.1:9"),
    ],
)
def test_compare_bad_input_is_one_line(history: History, args: list[str], message: str) -> None:
    result = compare(history.repo, *args, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}" or message in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_outside_a_dvc_repo(tmp_path: Path) -> None:
    result = compare(tmp_path, check=False)
    assert (
        result.returncode == 1
        and result.stderr.strip() == f"error: {tmp_path} is not a DVC repository (no .dvc/ here or above)"
    )


def test_compare_a_corrupt_metrics_file_names_it(history: History) -> None:
    metrics = history.repo / "metrics/classifier.json"
    original = metrics.read_text()
    try:
        metrics.write_text('{"accuracy": 0.5,')
        result = compare(history.repo, check=False)
    finally:
        metrics.write_text(original)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: metrics/classifier.json at workspace cannot be read")


# ------------------------------------------------------------------------------- remote and serving


def test_fresh_clone_pulls_models_and_data_and_the_servers_start_from_them(history: History, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(history.repo, "clone", "-q", str(history.repo), str(clone))
    assert not (clone / "models").exists()
    history.dvc("pull", "-q", cwd=clone)
    assert "Data and pipelines are up to date" in history.dvc("status", cwd=clone).stdout
    assert {name: _sha256(clone / "models" / name) for name in MODELS} == history.models[1]

    with grpc_server(clone / "models", "--threads", "1") as address:
        meta = pb_grpc.InferenceStub(grpc.insecure_channel(address)).GetMetadata(pb.GetMetadataRequest())
    pulled = {m.file: m.sha256 for m in meta.models}
    assert pulled == {name: sha for name, sha in history.models[1].items() if name.endswith(".onnx")}
    # Run 2 re-exported only the classifier, on run 1's commit with params.yaml edited (then committed
    # as run 2); the SR models are run 1's, exported from the clean first commit.
    first_commit = git(history.repo, "rev-parse", "HEAD~2").strip()
    provenance = {m.name: (m.provenance.commit, m.provenance.dirty) for m in meta.models}
    assert provenance == {
        "classifier": (history.commits[0], True),
        "sr_x2": (first_commit, False),
        "sr_x3": (first_commit, False),
    }

    with bentoml_server(clone / "models", CNNPIPE_THREADS="1") as base:
        served = httpx.get(f"{base}/metadata", timeout=60).json()
        table = _csv(compare(history.repo, "--server", base, "--format", "csv"))
    assert {m["file"]: m["sha256"] for m in served["models"]} == pulled
    server = table[table["kind"] == "server"].iloc[0]
    assert server["rev"] == ", ".join(sorted([f"{history.commits[0][:7]}+dirty", first_commit[:7]]))
    assert server["accuracy"] == pytest.approx(history.accuracy[1]) and server["classifier.epochs"] == 3


def test_pull_without_a_remote_is_one_clear_line(history: History, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(history.repo, "clone", "-q", str(history.repo), str(clone))
    (clone / ".dvc/config").write_text("[core]\n    analytics = false\n")
    result = history.dvc("pull", cwd=clone, check=False)
    assert result.returncode != 0 and "No remote provided and no default remote set" in result.stderr


def test_s3_remote_round_trip_against_a_local_s3_server(history: History, tmp_path: Path) -> None:
    """The same push and pull through dvc-s3, against moto's S3-compatible server on 127.0.0.1."""
    pytest.importorskip("dvc_s3", reason="the s3 extra (dvc-s3) is not installed")
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(Bucket="team")
        settings = {"endpointurl": endpoint, "access_key_id": "testing", "secret_access_key": "testing"}

        def use_s3(repo: Path) -> None:
            history.dvc("remote", "add", "--local", "-d", "team", "s3://team/cnnpipe", cwd=repo)
            for key, value in settings.items():
                history.dvc("remote", "modify", "--local", "team", key, value, cwd=repo)

        use_s3(history.repo)
        history.dvc("push", "-q", cwd=history.repo)
        clone = tmp_path / "clone"
        git(history.repo, "clone", "-q", str(history.repo), str(clone))
        use_s3(clone)
        history.dvc("pull", "-q", cwd=clone)
        assert "Data and pipelines are up to date" in history.dvc("status", cwd=clone).stdout
        assert {name: _sha256(clone / "models" / name) for name in MODELS} == history.models[1]
    finally:
        (history.repo / ".dvc/config.local").unlink(missing_ok=True)
        server.stop()


# ---------------------------------------------------------------------------------------- artifacts


def test_artifacts_get_by_gto_version_and_stage(history: History, tmp_path: Path) -> None:
    """`dvc artifacts get` resolves GTO tags (name@version, name#stage#n) to a commit, then reads the
    model from that commit's dvc.lock and the remote; `dvc get --rev` fetches any commit's."""

    def fetched(*args: str, command: str = "artifacts") -> str:
        out = tmp_path / f"got-{len(list(tmp_path.iterdir()))}.onnx"
        action = ["artifacts", "get"] if command == "artifacts" else ["get"]
        history.dvc(*action, str(history.repo), *args, "-o", str(out), cwd=tmp_path)
        return _sha256(out)

    gto = [str(Path(sys.executable).parent / "gto")]
    for args in (
        ["register", "classifier", history.commits[0], "--version", "v1.0.0"],
        ["register", "classifier", history.commits[1], "--version", "v1.1.0"],
        ["register", "sr-x3", history.commits[1], "--version", "v1.0.0"],
        ["assign", "classifier", "--version", "v1.0.0", "--stage", "prod"],
    ):
        subprocess.run([*gto, *args], cwd=history.repo, env=env(history.repo), check=True, capture_output=True)

    first, second = (models["classifier.onnx"] for models in history.models)
    assert fetched("classifier") == second  # the latest version
    assert fetched("classifier", "--rev", "v1.0.0") == first
    assert fetched("classifier", "--stage", "prod") == first
    assert fetched("sr-x3") == history.models[1]["sr_x3.onnx"]
    assert fetched("models/classifier.onnx", "--rev", history.commits[0], command="get") == first

    missing = history.dvc("artifacts", "get", str(history.repo), "classifier-pytorch", cwd=tmp_path, check=False)
    assert missing.returncode != 0 and "Unable to find artifact 'classifier-pytorch'" in missing.stderr


# --------------------------------------------------------------------------------- queued experiments


def test_queued_experiments_both_complete_and_compare_shows_them(history: History) -> None:
    for lr in ("0.2", "0.6"):
        history.dvc("exp", "run", "--queue", "-S", f"classifier.lr={lr}", "evaluate")
    try:
        history.dvc("queue", "start", "-j", "2")
        deadline = time.monotonic() + 600
        while True:
            status = history.dvc("queue", "status").stdout
            if not re.search(r"\b(Queued|Running)\b", status):
                break
            assert time.monotonic() < deadline, status
            time.sleep(2)
    finally:
        history.dvc("queue", "stop", check=False)
    assert status.count("Success") == 2, status

    table = _csv(compare(history.repo, "--exp", "-n", "1", "--format", "csv"))
    experiments = table[table["kind"] == "experiment"].set_index("classifier.lr")
    assert sorted(experiments.index) == [0.2, 0.6]
    head = table[table["kind"] == "commit"].iloc[0]
    assert head["classifier.lr"] == 0.4 and head["Δ accuracy"] == 0.0
    for lr, row in experiments.iterrows():
        assert row["message"] == f"experiment on {history.commits[1][:7]}", lr
        assert row["Δ accuracy"] == pytest.approx(row["accuracy"] - head["accuracy"])


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_workers(history: History):
    yield
    history.dvc("queue", "stop", "--kill", check=False)
    shutil.rmtree(history.repo / ".dvc/tmp/exps", ignore_errors=True)
