"""``hairseg models``: fetch the MediaPipe task models."""

from __future__ import annotations

from pathlib import Path

import click

from hairseg.cli.options import path_option


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
@path_option(
    "--dest", "dest", ".hairseg/models/mediapipe", help="folder for the .tflite files", kind="dir"
)
@path_option(
    "--wheel",
    "wheel_file",
    None,
    help="use this already-downloaded wheel instead of downloading it (sha256 still checked)",
    kind="file",
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
