"""Download → md5 → safe extraction → atomic move, against local files and a real HTTP server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from cnnpipe.data import fetch as fetch_module
from cnnpipe.data.fetch import Source, fetch
from cnnpipe.errors import FetchError

from .conftest import REPO


def _tar(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        add(tar)
    return path


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_fetch_from_a_local_path_extracts_and_records_the_source(tmp_path, tiny_archives) -> None:
    archive, md5 = tiny_archives["cifar10"]
    dest = tmp_path / "data" / "cifar10"

    assert fetch(Source(str(archive), md5, "data.cifar10"), dest) == md5

    assert (dest / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert json.loads((dest / "SOURCE.json").read_text())["md5"] == md5
    assert _leftovers(dest.parent) == ["cifar10"]  # no temporary files left behind


def test_a_python_without_tarfile_filters_extracts_the_same(tmp_path, tiny_archives, monkeypatch) -> None:
    """Python before 3.11.4 (Debian 12 ships 3.11.2) has no ``filter=``: the member checks alone guard."""
    monkeypatch.setattr(fetch_module, "TARFILE_FILTERS", False)
    archive, md5 = tiny_archives["cifar10"]
    dest = tmp_path / "data" / "cifar10"
    assert fetch(Source(str(archive), md5, "data.cifar10"), dest) == md5
    assert (dest / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    with pytest.raises(FetchError, match=r"unsafe: .*link"):
        fetch(Source(str(_tar(tmp_path, _symlink)), "", "data.x"), tmp_path / "out")


def test_file_url_works_like_a_path(tmp_path, tiny_archives) -> None:
    archive, md5 = tiny_archives["bsds300"]
    fetch(Source(archive.as_uri(), md5, "data.bsds300"), tmp_path / "bsds300")
    assert len(list((tmp_path / "bsds300" / "BSDS300" / "images" / "train").glob("*.jpg"))) == 4


def test_md5_mismatch_fails_and_writes_nothing(tmp_path, tiny_archives) -> None:
    archive, _ = tiny_archives["cifar10"]
    dest = tmp_path / "data" / "cifar10"
    with pytest.raises(FetchError, match=r"md5 mismatch .*data\.cifar10\.md5"):
        fetch(Source(str(archive), "0" * 32, "data.cifar10"), dest)
    assert _leftovers(dest.parent) == []


def test_failed_fetch_keeps_the_previous_tree(tmp_path, tiny_archives) -> None:
    archive, md5 = tiny_archives["cifar10"]
    dest = tmp_path / "cifar10"
    fetch(Source(str(archive), md5, "data.cifar10"), dest)
    before = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    with pytest.raises(FetchError):
        fetch(Source(str(archive), "f" * 32, "data.cifar10"), dest)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == before


def _dotdot(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("pkg/../../escaped.txt")
    info.size = 4
    tar.addfile(info, io.BytesIO(b"evil"))


def _symlink(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("pkg/passwd")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(info)


def _absolute(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("/tmp/absolute.txt")
    info.size = 4
    tar.addfile(info, io.BytesIO(b"evil"))


def _device(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("pkg/null")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    tar.addfile(info)


def _hardlink(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("pkg/hard")
    info.type, info.linkname = tarfile.LNKTYPE, "pkg/ok.txt"
    tar.addfile(info)


@pytest.mark.parametrize(
    ("add", "reason"),
    [(_dotdot, r"'\.\.'"), (_symlink, "link"), (_absolute, "absolute"), (_device, "device"), (_hardlink, "link")],
)
def test_unsafe_archives_are_rejected_before_anything_is_written(tmp_path, add, reason) -> None:
    archive = _tar(tmp_path, add)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FetchError, match=f"unsafe: .*{reason}"):
        fetch(Source(str(archive), "", "data.x"), work / "out")
    assert _leftovers(work) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_truncated_archive_is_reported_as_corrupted(tmp_path, tiny_archives) -> None:
    archive, _ = tiny_archives["cifar10"]
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(FetchError, match="corrupted or truncated"):
        fetch(Source(str(cut), "", "data.cifar10"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_local_file_names_the_param(tmp_path) -> None:
    with pytest.raises(FetchError, match=r"data\.cifar10\.url: no such file"):
        fetch(Source(str(tmp_path / "nope.tgz"), "", "data.cifar10"), tmp_path / "out")


def test_http_download_from_a_real_server(tmp_path, tiny_archives, http_root) -> None:
    base, root = http_root
    archive, md5 = tiny_archives["cifar10"]
    (root / archive.name).write_bytes(archive.read_bytes())
    fetch(Source(f"{base}/{archive.name}", md5, "data.cifar10"), tmp_path / "cifar10")
    assert (tmp_path / "cifar10" / "cifar-10-batches-bin" / "data_batch_5.bin").is_file()


def test_http_404_and_cut_connection_fail_cleanly(tmp_path, tiny_archives, http_root) -> None:
    base, root = http_root
    archive, md5 = tiny_archives["cifar10"]
    (root / archive.name).write_bytes(archive.read_bytes())
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(Source(f"{base}/missing.tar.gz", md5, "data.cifar10"), tmp_path / "a")
    with pytest.raises(FetchError, match="cut short"):
        fetch(Source(f"{base}/short/{archive.name}", md5, "data.cifar10"), tmp_path / "b")
    assert _leftovers(tmp_path) == ["www"]


def test_network_down_names_the_param(tmp_path) -> None:
    with pytest.raises(FetchError, match=r"data\.cifar10\.url"):
        fetch(Source("http://127.0.0.1:9/cifar.tgz", "", "data.cifar10"), tmp_path / "out")


def _run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    return subprocess.run(
        [sys.executable, "-m", "stages.fetch_data", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def _params(cwd: Path, url: str, md5: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["cifar10"] = {"url": url, "md5": md5}
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))


def test_fetch_stage_downloads_over_http(tmp_path, tiny_archives, http_root) -> None:
    base, root = http_root
    archive, md5 = tiny_archives["cifar10"]
    (root / archive.name).write_bytes(archive.read_bytes())
    _params(tmp_path, f"{base}/{archive.name}", md5)

    result = _run_stage(tmp_path, "cifar10")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin").is_file()


def test_fetch_stage_bad_md5_is_one_readable_line_and_no_output(tmp_path, tiny_archives, http_root) -> None:
    base, root = http_root
    archive, _ = tiny_archives["cifar10"]
    (root / archive.name).write_bytes(archive.read_bytes())
    _params(tmp_path, f"{base}/{archive.name}", "1" * 32)

    result = _run_stage(tmp_path, "cifar10")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip() and "fetch data" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: md5 mismatch"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "cifar10").exists()
