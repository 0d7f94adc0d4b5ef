"""`hairseg data ensure`: keep / dvc pull / regenerate-and-verify, with real DVC (local remote)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hairseg.data.ensure import dvc_dir_hash, ensure_data, read_dvc_record, write_provenance
from hairseg.data.generate import DataParams, generate_dataset
from hairseg.errors import HairsegError

TINY = DataParams(seed=5, image_size=48, n_train=3, n_val=1, n_test=1)


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC repo (no git) whose data.dvc records the TINY demo dataset, data/ present."""
    root = tmp_path_factory.mktemp("template") / "repo"
    root.mkdir()
    _dvc(root, "init", "--no-scm", "-q")
    generate_dataset(root / "data", TINY)
    _dvc(root, "add", "-q", "data")
    return root


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    """A private copy of the template repo (DVC's CLI is slow to start; set it up once)."""
    return Path(shutil.copytree(template, tmp_path / "repo", symlinks=True))


def _fresh_clone(root: Path) -> None:
    shutil.rmtree(root / "data")
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)


def test_dir_hash_is_dvcs_own(repo: Path) -> None:
    record = read_dvc_record(repo / "data.dvc")
    assert dvc_dir_hash(repo / "data") == (record.md5, record.nfiles)


def test_present_data_is_kept(repo: Path) -> None:
    before = (repo / "data" / "manifest.parquet").stat().st_mtime_ns
    result = ensure_data(repo, TINY, try_remote=False)
    assert result.method == "present" and result.generator_params == TINY.__dict__
    assert (repo / "data" / "manifest.parquet").stat().st_mtime_ns == before


def test_fresh_clone_regenerates_verifies_and_fills_the_cache(repo: Path) -> None:
    _fresh_clone(repo)
    result = ensure_data(repo, TINY, try_remote=False)
    record = read_dvc_record(repo / "data.dvc")
    assert result.method == "generated" and result.data_md5 == record.md5
    status = _dvc(repo, "status", "--json", "data.dvc").stdout
    assert json.loads(status) == {}, status  # data present *and* in .dvc/cache
    assert sorted(p.name for p in repo.iterdir() if p.name.startswith(".data")) == []


def test_regeneration_with_other_params_fails_and_writes_nothing(repo: Path) -> None:
    _fresh_clone(repo)
    record = read_dvc_record(repo / "data.dvc")
    with pytest.raises(HairsegError) as err:
        ensure_data(repo, DataParams(seed=6, image_size=48, n_train=3, n_val=1, n_test=1))
    message = str(err.value)
    assert f"expected {record.md5}, got " in message and "seed" in message
    assert not (repo / "data").exists()
    assert not [p for p in repo.iterdir() if p.name.startswith(".data")]


def test_present_data_from_other_generator_params_is_named(repo: Path) -> None:
    other = DataParams(seed=6, image_size=48, n_train=3, n_val=1, n_test=1)
    with pytest.raises(HairsegError, match="seed: data has 5, params.yaml has 6"):
        ensure_data(repo, other, try_remote=False)


def test_edited_data_is_not_overwritten_without_force(repo: Path) -> None:
    extra = repo / "data" / "images" / "stray.png"
    extra.write_bytes(b"local edit")
    with pytest.raises(HairsegError, match="does not match data.dvc"):
        ensure_data(repo, TINY, try_remote=False)
    assert extra.read_bytes() == b"local edit"
    assert ensure_data(repo, TINY, try_remote=False, force=True).method == "generated"
    assert not extra.exists()


def test_pull_from_a_configured_remote(repo: Path, tmp_path: Path) -> None:
    """A real DVC remote on the local filesystem stands in for S3/GCS/Azure."""
    _dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "remote"))
    _dvc(repo, "push", "-q")
    _fresh_clone(repo)
    assert ensure_data(repo, TINY).method == "pulled"
    assert dvc_dir_hash(repo / "data")[0] == read_dvc_record(repo / "data.dvc").md5


def test_unusable_remote_falls_back_to_regeneration(repo: Path, tmp_path: Path) -> None:
    _dvc(repo, "remote", "add", "-d", "empty", str(tmp_path / "empty-remote"))
    _fresh_clone(repo)
    notices: list[str] = []
    result = ensure_data(repo, TINY, notice=notices.append)
    assert result.method == "generated"
    assert len(notices) == 1 and "dvc remote 'empty' unusable" in notices[0]


def test_missing_or_malformed_dvc_file(tmp_path: Path) -> None:
    with pytest.raises(HairsegError, match="data.dvc not found"):
        ensure_data(tmp_path, TINY)
    (tmp_path / "data.dvc").write_text("outs: nothing\n")
    with pytest.raises(HairsegError, match="exactly one output"):
        ensure_data(tmp_path, TINY)


def test_provenance_is_byte_stable_and_keeps_how_data_was_obtained(tmp_path: Path) -> None:
    path = tmp_path / "prov.json"
    first = {"method": "generated", "data_md5": "abc.dir", "nfiles": 3}
    write_provenance(first, path)
    text = path.read_text()
    write_provenance({**first, "method": "present"}, path)
    assert path.read_text() == text
    write_provenance({**first, "method": "present", "data_md5": "def.dir"}, path)
    assert json.loads(path.read_text())["method"] == "present"
