"""``hairseg data``: generate, ensure, import and validate datasets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from hairseg.cli.options import params_option as shared_params_option
from hairseg.cli.options import path_option
from hairseg.errors import EXIT_USAGE, HairsegError

PARAMS_HELP = "params file whose 'data'/'validate' sections give the defaults"


def _params(path: Path, explicit: bool) -> dict[str, Any]:
    """Load params.yaml; a missing default file means built-in defaults."""
    from hairseg.config import load_params

    if not path.is_file() and not explicit:
        return {}
    return load_params(path)


def _explicit(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT


def _data_params(ctx: click.Context, params_file: Path, **overrides: int | None):
    from hairseg.config import section
    from hairseg.data.generate import DataParams

    base = section(_params(params_file, _explicit(ctx, "params_file")), "data", DataParams)
    chosen = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **chosen)


def _notice(message: str) -> None:
    click.echo(f"hairseg: notice: {message}", err=True)


params_option = shared_params_option(PARAMS_HELP, dest="params_file")


@click.group()
def data() -> None:
    """Generate, import, ensure and validate datasets (images/, masks/, manifest.parquet)."""


@data.command()
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@params_option
@click.option("--seed", type=int, help="generator seed [params data.seed]")
@click.option("--n-train", type=click.IntRange(min=0), help="train images [params data.n_train]")
@click.option("--n-val", type=click.IntRange(min=0), help="val images [params data.n_val]")
@click.option("--n-test", type=click.IntRange(min=0), help="test images [params data.n_test]")
@click.option(
    "--image-size",
    type=click.IntRange(min=32, max=2048),
    help="side in pixels [params data.image_size]",
)
@click.option("--overwrite", is_flag=True, help="replace DEST if it is not empty")
@click.pass_context
def generate(
    ctx: click.Context,
    dest: Path,
    params_file: Path,
    seed: int | None,
    n_train: int | None,
    n_val: int | None,
    n_test: int | None,
    image_size: int | None,
    overwrite: bool,
) -> None:
    """Generate the seeded procedural demo dataset into DEST (same seed, same bytes)."""
    from hairseg.data.generate import generate_dataset

    params = _data_params(
        ctx,
        params_file,
        seed=seed,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        image_size=image_size,
    )
    result = generate_dataset(dest, params, overwrite=overwrite, progress=True)
    counts = ", ".join(f"{k}={v}" for k, v in result.counts.items())
    click.echo(f"generated {sum(result.counts.values())} images ({counts}) in {result.path}")


@data.command()
@params_option
@path_option(
    "--dvc-file",
    "dvc_file",
    "data.dvc",
    help="the `dvc add` file naming the dataset and its hash",
    kind="file",
)
@path_option(
    "--provenance",
    "provenance",
    "artifacts/data_provenance.json",
    help="where to record how the data was obtained",
    kind="file",
)
@click.option(
    "--no-remote", is_flag=True, help="do not try `dvc pull` even if a remote is configured"
)
@click.option(
    "--force", is_flag=True, help="replace a data folder that does not match the .dvc file"
)
@click.pass_context
def ensure(
    ctx: click.Context,
    params_file: Path,
    dvc_file: Path,
    provenance: Path,
    no_remote: bool,
    force: bool,
) -> None:
    """Make the data folder match DVC_FILE: keep, `dvc pull`, or regenerate and verify."""
    from hairseg.data.ensure import ensure_data, write_provenance

    params = _data_params(ctx, params_file)
    result = ensure_data(
        Path.cwd(),
        params,
        dvc_file=dvc_file,
        try_remote=not no_remote,
        force=force,
        progress=True,
        notice=_notice,
    )
    write_provenance(result.provenance(str(dvc_file)), provenance)
    click.echo(f"data {result.method}: {result.nfiles} files, md5 {result.data_md5}")


@data.command("import")
@click.argument("kind", type=click.Choice(["celebamask-hq", "figaro1k"]))
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 0.5),
    default=0.1,
    show_default=True,
    help="share of images for val where the source has no val split",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 0.5),
    default=0.1,
    show_default=True,
    help="share for test where the source has no split at all (CelebAMask-HQ without its mapping file)",
)
@click.option("--overwrite", is_flag=True, help="replace DEST if it is not empty")
def import_(
    kind: str, src: Path, dest: Path, val_fraction: float, test_fraction: float, overwrite: bool
) -> None:
    """Convert a public dataset at SRC (KIND: celebamask-hq or figaro1k) into DEST."""
    from hairseg.data.importers import import_celebamask_hq, import_figaro1k

    if kind == "celebamask-hq":
        result = import_celebamask_hq(
            src,
            dest,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            overwrite=overwrite,
            progress=True,
        )
    else:
        result = import_figaro1k(
            src, dest, val_fraction=val_fraction, overwrite=overwrite, progress=True
        )
    counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items()))
    click.echo(
        f"imported {sum(result.counts.values())} {kind} images ({counts}) into {result.path}"
    )


@data.command()
@click.argument("dataset", type=click.Path(path_type=Path, file_okay=False), default="data")
@params_option
@path_option(
    "--reports",
    "reports_dir",
    "reports/validation",
    help="result.json and GX Data Docs go here",
    kind="dir",
)
@path_option(
    "--stats-out",
    "stats_out",
    "artifacts/image_stats.parquet",
    help="the per-image statistics table (Feast image_stats_v1 source)",
    kind="file",
)
@path_option(
    "--metrics-out",
    "metrics_out",
    "metrics/validation.json",
    help="summary numbers for `dvc metrics`",
    kind="file",
)
@path_option(
    "--models-dir",
    "models_dir",
    ".hairseg/models/mediapipe",
    help="where `hairseg models fetch` put the MediaPipe models",
    kind="dir",
)
@click.option("--no-faces", is_flag=True, help="skip MediaPipe face counting")
@click.pass_context
def validate(
    ctx: click.Context,
    dataset: Path,
    params_file: Path,
    reports_dir: Path,
    stats_out: Path,
    metrics_out: Path,
    models_dir: Path,
    no_faces: bool,
) -> None:
    """Validate DATASET with the Great Expectations gate; exit 1 listing failed checks."""
    from hairseg.config import section
    from hairseg.data.validate import ValidateParams
    from hairseg.stages.data import validate_stage

    if not dataset.is_dir():
        raise HairsegError(f"dataset folder not found: {dataset}", exit_code=EXIT_USAGE)
    params = section(
        _params(params_file, _explicit(ctx, "params_file")), "validate", ValidateParams
    )
    report = validate_stage(
        dataset,
        params,
        reports_dir=reports_dir,
        stats_out=stats_out,
        metrics_out=metrics_out,
        models_dir=models_dir,
        faces=not no_faces,
    )
    if report.notice:
        _notice(report.notice)
    for failure in report.failures:
        click.echo(f"  FAILED {failure}", err=True)
    report.raise_if_failed()
    click.echo(
        f"dataset {dataset} passed {report.n_expectations} checks on {report.n_images} images; "
        f"Data Docs: {report.data_docs}"
    )


@data.command()
@click.argument("dataset", type=click.Path(path_type=Path, file_okay=False), default="data")
@path_option("--out", "out", "reports/data_contact_sheet.png", help="PNG to write", kind="file")
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="images, spread evenly over the manifest",
)
@click.option("--columns", type=click.IntRange(min=1), default=8, show_default=True)
def sheet(dataset: Path, out: Path, count: int, columns: int) -> None:
    """Write a contact sheet of DATASET: each image above its hair-mask overlay."""
    from hairseg.data.sheet import contact_sheet

    click.echo(f"wrote {contact_sheet(dataset, out, count=count, columns=columns)}")


def teacher_options(command):
    """``--models-dir``, ``--split``, ``--reports``, ``--no-validate``: the pseudo-label
    teacher's options, shared by ``data pseudo-label`` and ``predict --teacher``."""
    for option in reversed(
        [
            path_option(
                "--models-dir",
                "models_dir",
                None,
                help="MediaPipe models [params priors.models_dir: .hairseg/models/mediapipe]",
                kind="dir",
            ),
            click.option(
                "--split",
                type=click.Choice(["train", "val", "test"]),
                default="train",
                show_default=True,
                help="the split every labelled image goes to",
            ),
            path_option(
                "--reports",
                "reports_dir",
                "reports/pseudo_label_validation",
                help="the Great Expectations result.json and Data Docs of DEST",
            ),
            click.option(
                "--no-validate", is_flag=True, help="skip the Great Expectations gate on DEST"
            ),
        ]
    ):
        command = option(command)
    return command


@data.command("pseudo-label")
@click.argument("src", type=click.Path(path_type=Path, file_okay=False))
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@params_option
@path_option(
    "--model",
    "model",
    None,
    help="an ONNX model whose fused masks join the teacher (its disagreements lower confidence)",
    kind="file",
)
@teacher_options
@click.option("--overwrite", is_flag=True, help="replace DEST if it is not empty")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="worker processes [batch.workers]"
)
@click.option(
    "--skip-unavailable",
    is_flag=True,
    help="when SRC's images or the MediaPipe face detector are absent, write "
    "DEST/unavailable.json with the reason and exit 0 (the DVC stage: training then "
    "carries on with synthetic data only)",
)
@click.pass_context
def pseudo_label(
    ctx: click.Context,
    src: Path,
    dest: Path,
    params_file: Path,
    model: Path | None,
    models_dir: Path | None,
    split: str,
    reports_dir: Path,
    no_validate: bool,
    overwrite: bool,
    workers: int | None,
    skip_unavailable: bool,
) -> None:
    """Weak hair labels for the portraits in SRC, written to DEST as a dataset.

    SRC is a folder of photos (or a dataset with a manifest, e.g. datasets/real_portraits_pool).
    DEST gets images/, masks/, confidence/ (per-pixel, 0-255) and a manifest with
    source=pseudo and a per-image confidence; non-images, photos without a face and
    low-confidence labels are skipped with one line each. DEST is then validated with the
    Great Expectations gate (params validate:, required_splits = the split written).

    It runs on the batch path (`hairseg predict --teacher`): worker processes
    [batch.workers], and a rerun after a crash resumes (DEST/results.parquet has a row per file).
    """
    from hairseg.batch import BatchConfig
    from hairseg.config import section
    from hairseg.data.pseudo_label import PseudoLabelConfig, validate_pseudo_dataset
    from hairseg.priors import PriorsConfig
    from hairseg.stages.data import (
        pseudo_label_folder,
        pseudo_label_unavailable,
        write_unavailable,
    )

    params = _params(params_file, _explicit(ctx, "params_file"))
    cfg = section(params, "pseudo_label", PseudoLabelConfig)
    priors = section(params, "priors", PriorsConfig)
    if models_dir is not None:
        priors = dataclasses.replace(priors, models_dir=str(models_dir))
    reason = pseudo_label_unavailable(src, priors) if skip_unavailable and src.is_dir() else ""
    if reason:
        path = write_unavailable(dest, reason)
        _notice(f"pseudo-label: nothing labelled: {reason}; wrote {path}")
        return
    if model is not None and not model.is_file():
        raise HairsegError(f"--model: ONNX file not found: {model}", exit_code=EXIT_USAGE)
    batch_cfg = section(params, "batch", BatchConfig)
    if workers is not None:
        batch_cfg = dataclasses.replace(batch_cfg, workers=workers)
    result = pseudo_label_folder(
        src,
        dest,
        cfg,
        priors=priors,
        model=model,
        overwrite=overwrite,
        split=split,
        batch=batch_cfg,
        on_skip=lambda item: _notice(item.line()),
    )
    click.echo(
        f"pseudo-labelled {result.n_labelled} image(s) into {result.path} "
        f"(mean confidence {result.mean_confidence:.2f}); skipped {len(result.skipped)}"
    )
    if no_validate:
        return
    passed = validate_pseudo_dataset(
        dest,
        params,
        split=split,
        models_dir=priors.models_dir,
        reports_dir=reports_dir,
        on_failure=lambda line: click.echo(f"  FAILED {line}", err=True),
    )
    click.echo(passed)
