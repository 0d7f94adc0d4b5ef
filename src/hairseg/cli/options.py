"""Options shared by the ``hairseg`` sub-commands, declared once.

Every command that reads ``params.yaml`` takes ``--params``; every command that talks to
MLflow takes ``--tracking-uri`` and resolves it with :func:`resolve_tracking_uri` (the
option, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store under ``.hairseg/``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["params_option", "path_option", "resolve_tracking_uri", "tracking_option"]

PATH = click.Path(path_type=Path)


def params_option(help: str = "Parameters file (params.yaml).", dest: str = "params_path"):
    """``--params FILE`` (default ``params.yaml``) stored under ``dest``."""
    return click.option(
        "--params",
        dest,
        type=click.Path(path_type=Path, dir_okay=False),
        default=Path("params.yaml"),
        show_default=True,
        help=help,
    )


def tracking_option(help: str = "MLflow tracking/registry URI"):
    """``--tracking-uri URI`` (env ``MLFLOW_TRACKING_URI``; see :func:`resolve_tracking_uri`)."""
    return click.option(
        "--tracking-uri",
        "tracking_uri",
        envvar="MLFLOW_TRACKING_URI",
        default=None,
        help=f"{help} [env MLFLOW_TRACKING_URI, else sqlite:///<cwd>/.hairseg/mlflow.db].",
    )


PATH_KINDS = {
    "any": PATH,
    "file": click.Path(path_type=Path, dir_okay=False),
    "dir": click.Path(path_type=Path, file_okay=False),
}


def path_option(
    flag: str, dest: str, default: str | None, help: str | None = None, *, kind: str = "any"
):
    """A ``--flag PATH`` option stored under ``dest``; ``kind`` "file" or "dir" rejects the
    other kind. A default is shown in ``--help``; ``None`` means the option is optional."""
    return click.option(
        flag,
        dest,
        type=PATH_KINDS[kind],
        default=None if default is None else Path(default),
        show_default=default is not None,
        help=help,
    )


def resolve_tracking_uri(explicit: str | None, root: Path | None = None) -> str:
    """The MLflow URI a command uses: ``explicit``, else ``$MLFLOW_TRACKING_URI``, else the
    embedded SQLite store under ``<root or cwd>/.hairseg/``."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from hairseg.registry import default_tracking_uri

    return default_tracking_uri(root or Path.cwd())
