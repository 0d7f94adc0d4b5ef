"""``hairseg ARGS`` the way a test reads it: exit code, stdout, stderr.

:func:`run_cli` runs it in this process: the same code path as the console script
(``hairseg.cli.main`` turns errors into one line and an exit code) without an interpreter
start-up, and a second import of MLflow, ONNX and friends, per call. :func:`run_subprocess`
runs the real ``python -m hairseg`` where the process itself matters.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["environ", "run_cli", "run_subprocess"]


@contextlib.contextmanager
def environ(extra: Mapping[str, str] | None) -> Iterator[None]:
    """``os.environ`` with ``extra`` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k in extra or {}}
    os.environ.update(extra or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(
    *args: str | os.PathLike[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``hairseg ARGS`` in ``cwd`` (default: here) with ``env`` added to the environment."""
    from hairseg.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with (
        environ(env),
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(["hairseg", *argv], code, out.getvalue(), err.getvalue())


def run_subprocess(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m hairseg ARGS`` in a real subprocess (``env``: its whole environment)."""
    return subprocess.run(
        [sys.executable, "-m", "hairseg", *map(str, args)],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
