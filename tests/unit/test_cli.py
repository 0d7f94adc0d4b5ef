"""The CLI shell: help, version, and one-line errors."""

from __future__ import annotations

from cli_support import run_subprocess as _hairseg  # isort: skip


def test_help_and_version() -> None:
    assert _hairseg("--help").returncode == 0
    version = _hairseg("--version")
    assert version.returncode == 0 and "hairseg, version" in version.stdout


def test_unknown_command_fails_in_one_line_without_traceback() -> None:
    result = _hairseg("no-such-command")
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
    assert "Traceback" not in result.stderr
