"""The one atomic JSON writer: sorted, indented output; a failed write keeps the old file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hairseg.jsonio import write_json_atomic


def test_writes_sorted_indented_json_and_creates_parents(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "a" / "m.json", {"b": 1, "a": Path("x")})
    assert path.read_text() == '{\n  "a": "x",\n  "b": 1\n}\n'


def test_a_failed_write_leaves_the_previous_file_and_no_temp_files(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "m.json", {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()}, default=None)
    assert json.loads(path.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
