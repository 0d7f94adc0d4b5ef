"""``hairseg predict SRC DEST``: batch prediction over a folder, a glob or a bucket
(:mod:`hairseg.batch`)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from hairseg.cli.data import teacher_options
from hairseg.cli.options import params_option, resolve_tracking_uri, tracking_option
from hairseg.errors import HairsegError

__all__ = ["predict"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--model",
    "model_uri",
    default="models:/hairseg@champion",
    show_default=True,
    help="A .onnx file, a model folder, or models:/NAME@ALIAS | models:/NAME/VERSION.",
)
@tracking_option(help="MLflow registry for models:/")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Worker processes [batch.workers]."
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Only shard I of N (0-based) of the sorted listing.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="At most this many inputs (after --shard).",
)
@click.option(
    "--tryon",
    "tryon_shade",
    default=None,
    metavar="SHADE",
    help="Also write tryon/<id>.jpg in this shade (name or #rrggbb).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Larger images are failed rows [batch.max_pixels].",
)
@click.option(
    "--as-dataset",
    is_flag=True,
    help="Write DEST in the dataset format (images/, masks/, manifest.parquet, source=pseudo, per-image confidence).",
)
@click.option(
    "--teacher",
    is_flag=True,
    help="Pseudo-label mode (implies --as-dataset): the MediaPipe priors label each image, joined by --model only when it is given; DEST gets confidence/ maps and passes the Great Expectations gate (as `hairseg data pseudo-label`).",
)
@teacher_options
@click.option(
    "--licence",
    default="unknown",
    show_default=True,
    help="With --as-dataset: the manifest's licence column.",
)
@params_option(
    help="params.yaml whose 'batch' section holds the defaults (a missing default file: built-ins).",
    dest="params_file",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr [default: only when stderr is a terminal].",
)
def predict(
    src: str,
    dest: Path,
    model_uri: str,
    tracking_uri: str | None,
    workers: int | None,
    shard: str | None,
    limit: int | None,
    tryon_shade: str | None,
    max_pixels: int | None,
    as_dataset: bool,
    teacher: bool,
    models_dir: Path | None,
    split: str,
    reports_dir: Path,
    no_validate: bool,
    licence: str,
    params_file: Path,
    progress: bool | None,
) -> None:
    """Masks for every image in SRC (folder, glob, or s3:// gs:// az:// URI) into DEST.

    One row per input in DEST/results.parquet; a rerun skips what is done. Exit 1 (one
    line) when any input failed; the failed rows say why.
    """  # fmt: skip
    from hairseg import batch, registry
    from hairseg.config import load_params, section

    params = load_params(params_file) if params_file.is_file() else {}
    if not params_file.is_file() and params_file != Path("params.yaml"):
        raise HairsegError(f"params file not found: {params_file}", exit_code=2)
    cfg = section(params, "batch", batch.BatchConfig)
    overrides = {"workers": workers, "max_pixels": max_pixels, "tryon_shade": tryon_shade}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    shard_spec = batch.parse_shard(shard)

    spec = None
    model_given = click.get_current_context().get_parameter_source("model_uri")
    registered, model_path = None, None
    if not teacher or model_given is not click.core.ParameterSource.DEFAULT:
        uri = tracking_uri or ""
        if model_uri.startswith("models:/"):
            uri = resolve_tracking_uri(tracking_uri)
            version = registry.resolve_version(uri, model_uri)
            registered = f"models:/{registry.MODEL_NAME}/{version}"
        model_path = registry.fetch_onnx(model_uri, Path(".hairseg/cache/registry"), uri)
    if teacher:
        from hairseg.data.pseudo_label import PseudoLabelConfig, TeacherSpec
        from hairseg.priors import PriorsConfig

        priors = section(params, "priors", PriorsConfig)
        if models_dir is not None:
            priors = dataclasses.replace(priors, models_dir=str(models_dir))
        pseudo = section(params, "pseudo_label", PseudoLabelConfig)
        spec = TeacherSpec(pseudo, priors, None if model_path is None else str(model_path))

    listed = batch.list_inputs(src)
    inside = dest.resolve()  # DEST inside SRC: its own masks are not inputs on a rerun
    listed = [
        it for it in listed if "://" in it.uri or inside not in Path(it.uri).resolve().parents
    ]
    items = batch.select(listed, shard_spec, limit)
    summary = batch.run_batch(
        items,
        dest,
        model_path,
        cfg,
        shard=shard_spec,
        as_dataset=as_dataset,
        teacher=spec,
        registered_version=registered,
        licence=licence,
        split=split,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    if spec is not None and not no_validate and summary.n_ok:
        from hairseg.data.pseudo_label import validate_pseudo_dataset

        # the gate judges what was written, failed rows or not
        click.echo(
            validate_pseudo_dataset(
                dest,
                params,
                split=split,
                models_dir=spec.priors.models_dir,
                reports_dir=reports_dir,
                on_failure=lambda line: click.echo(f"  FAILED {line}", err=True),
            )
        )
    if summary.n_failed:
        raise HairsegError(summary.line())
    click.echo(summary.line())
