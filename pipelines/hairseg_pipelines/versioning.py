"""Pipeline versions: the package version names the compiled file and the display name;
the git commit names the version uploaded to KFP, so a run traces back to its code. Also
the helpers every pipeline definition uses (:func:`pipeline`, :func:`section_defaults`,
:func:`step`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hairseg import __version__

__all__ = [
    "BATCH_PIPELINE",
    "COMPILED_DIR",
    "DRIFT_PIPELINE",
    "PIPELINE_VERSION",
    "TRAINING_PIPELINE",
    "compiled_path",
    "git_commit",
    "pipeline",
    "section_defaults",
    "step",
    "upload_version_name",
]

PIPELINE_VERSION = __version__
TRAINING_PIPELINE = "hairseg-training"
DRIFT_PIPELINE = "hairseg-drift"
BATCH_PIPELINE = "hairseg-batch"
COMPILED_DIR = Path("pipelines") / "compiled"


def pipeline(name: str, description: str) -> Callable[[Callable[..., Any]], Any]:
    """``@dsl.pipeline`` named ``name`` (``hairseg-<kind>``), shown as ``hairseg <kind>
    <version>``, its description prefixed with ``hairseg <version>: ``."""
    from kfp import dsl

    kind = name.removeprefix("hairseg-")
    return dsl.pipeline(
        name=name,
        display_name=f"hairseg {kind} {PIPELINE_VERSION}",
        description=f"hairseg {PIPELINE_VERSION}: {description}",
    )


def section_defaults(params: Mapping[str, Any], sections: tuple[str, ...]) -> dict[str, dict]:
    """Each ``params.yaml`` section named in ``sections`` as a plain dict (``{}`` when
    absent): KFP reads each parameter's default from the pipeline's signature."""
    return {name: dict(params.get(name) or {}) for name in sections}


def step(task: Any, image: str, display_name: str, *, cache: bool) -> Any:
    """Image, display name and caching for a task."""
    return task.set_container_image(image).set_display_name(display_name).set_caching_options(cache)


def compiled_path(name: str, root: str | Path = ".", version: str = PIPELINE_VERSION) -> Path:
    """``<root>/pipelines/compiled/<name>-v<version>.yaml``."""
    return Path(root) / COMPILED_DIR / f"{name}-v{version}.yaml"


def git_commit(root: str | Path = ".") -> tuple[str | None, bool]:
    """(full commit sha, working tree has uncommitted changes to tracked files), or
    (None, False) outside a git checkout (e.g. inside the container image)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return None, False
    return sha, dirty


def upload_version_name(root: str | Path = ".", version: str = PIPELINE_VERSION) -> str:
    """``0.1.0+g1a2b3c4`` (``.dirty`` appended when tracked files have local changes)."""
    sha, dirty = git_commit(root)
    if sha is None:
        return version
    return f"{version}+g{sha[:7]}" + (".dirty" if dirty else "")
