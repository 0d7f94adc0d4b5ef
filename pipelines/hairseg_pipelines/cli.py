"""``hairseg pipeline``: compile, upload and run the Kubeflow pipelines, or run them locally.

This door registers the command itself (entry point ``hairseg.commands:pipeline`` in
pyproject.toml); the core never imports it. KFP is imported only inside the commands, so
``hairseg --help`` and the other commands never pay for it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from hairseg.cli.options import params_option, tracking_option
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["pipeline"]

PIPELINE_NAMES = ("hairseg-training", "hairseg-drift", "hairseg-batch")

PARAMS_OPTION = params_option(
    "params.yaml whose sections become the pipeline parameters' defaults.", dest="params_file"
)
DIR = click.Path(path_type=Path, file_okay=False)


def _env_option(flag: str, envvar: str, help: str):
    """``--flag VALUE`` that falls back to ``$envvar`` (named in the help)."""
    return click.option(flag, envvar=envvar, default=None, help=f"{help} [env {envvar}].")


REGISTRY_OPTION = _env_option(
    "--registry",
    "HAIRSEG_IMAGE_REGISTRY",
    "Image repository of the project image the steps run in (tag = package version; "
    "default ghcr.io/hairseg/hairseg)",
)
PIPELINE_OPTION = click.option(
    "--pipeline",
    "pipeline_name",
    type=click.Choice(PIPELINE_NAMES),
    default="hairseg-training",
    help="Which pipeline [default: hairseg-training].",
)
HOST_OPTION = _env_option("--host", "KFP_HOST", "KFP API/UI address, e.g. http://localhost:8080")
TOKEN_OPTION = _env_option("--token", "KFP_TOKEN", "Bearer token ('Authorization: Bearer ...')")
NAMESPACE_OPTION = _env_option("--namespace", "KFP_NAMESPACE", "Profile namespace (multi-user)")
PARAM_OPTION = click.option(
    "--param",
    "param_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a parameter (repeatable): 'train.epochs=3' sets a key of a params.yaml "
    "section, 'mlflow_tracking_uri=http://...' a pipeline parameter. VALUE is YAML.",
)


PIPELINE_ROOT_HELP = "Where kfp.local writes each task's artifacts [.hairseg/kfp-local]."


def _stack(*options):
    """One decorator applying ``options`` in the order written."""

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


KFP_API_OPTIONS = _stack(HOST_OPTION, TOKEN_OPTION, NAMESPACE_OPTION)
RUN_OPTIONS = _stack(PIPELINE_OPTION, PARAMS_OPTION, PARAM_OPTION)


def _image(registry: str | None) -> str:
    from hairseg_components import DEFAULT_REGISTRY, image_ref

    return image_ref(registry or DEFAULT_REGISTRY)


def _params(params_file: Path) -> dict[str, Any]:
    from hairseg.config import load_params

    return load_params(params_file)


def parse_param_pairs(
    pairs: Sequence[str], defaults: Mapping[str, Any], sections: Sequence[str]
) -> dict[str, Any]:
    """Pipeline arguments from ``KEY=VALUE`` pairs, merged onto ``defaults``.

    ``section.key[.sub]=v`` merges into ``<section>_params`` (the rest of the section keeps
    its value in ``defaults``); any other ``name=v`` sets pipeline parameter ``name``.
    Returns only the parameters the pairs touched. Unknown names are usage errors.
    """
    import yaml

    from hairseg_pipelines.local import deep_merge

    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise HairsegError(f"--param {pair!r} is not KEY=VALUE", exit_code=EXIT_USAGE)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        head, _, rest = key.partition(".")
        if rest:
            if head not in sections:
                raise HairsegError(
                    f"--param {key}: {head!r} is not a params section of this pipeline; "
                    f"sections: {', '.join(sections)}",
                    exit_code=EXIT_USAGE,
                )
            name = f"{head}_params"
            nested: Any = value
            for part in reversed(rest.split(".")):
                nested = {part: nested}
            args[name] = deep_merge(args.get(name, defaults.get(name) or {}), nested)
        else:
            if key not in defaults:
                raise HairsegError(
                    f"--param {key}: not a parameter of this pipeline; parameters: "
                    f"{', '.join(sorted(defaults))} (or SECTION.KEY=VALUE)",
                    exit_code=EXIT_USAGE,
                )
            args[key] = value
    return args


def _pipeline_defaults(component: Any) -> dict[str, Any]:
    """Parameter name -> default of a compiled ``GraphComponent``."""
    return {name: spec.default for name, spec in component.component_spec.inputs.items()}


def _require(args: Mapping[str, Any]) -> None:
    """Parameters without a default must be given."""
    missing = sorted(name for name, value in args.items() if value is None)
    if missing:
        raise HairsegError(
            f"missing required pipeline parameter(s): {', '.join(missing)}; pass "
            + " ".join(f"--param {name}=..." for name in missing),
            exit_code=EXIT_USAGE,
        )


def _sections(pipeline_name: str) -> tuple[str, ...]:
    if pipeline_name == "hairseg-training":
        from hairseg_pipelines.training import SECTIONS
    elif pipeline_name == "hairseg-batch":
        from hairseg_pipelines.batch import SECTIONS
    else:
        from hairseg_pipelines.drift import SECTIONS
    return SECTIONS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def pipeline() -> None:
    """Compile, upload and run the KFP v2 pipelines (or run them locally with kfp.local)."""


@pipeline.command("compile")
@PARAMS_OPTION
@REGISTRY_OPTION
@click.option("--root", type=DIR, default=Path("."), help="Project root [default: .].")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the committed YAML is stale.")
def compile_cmd(params_file: Path, registry: str | None, root: Path, check: bool) -> None:
    """Compile hairseg-training, hairseg-drift and hairseg-batch to versioned YAML."""
    from hairseg_pipelines.compile import PIPELINES, compile_all, compile_to_text
    from hairseg_pipelines.versioning import compiled_path

    params, image = _params(params_file), _image(registry)
    if check:
        stale = []
        for name in PIPELINES:
            path = compiled_path(name, root)
            if not path.is_file() or path.read_text() != compile_to_text(name, params, image):
                stale.append(str(path))
        if stale:
            raise HairsegError(
                f"compiled pipeline out of date: {', '.join(stale)}; run `hairseg pipeline compile`"
            )
        click.echo("compiled pipelines are up to date")
        return
    for path in compile_all(params, image, root):
        click.echo(f"wrote {path}")


@pipeline.command("upload")
@KFP_API_OPTIONS
@PIPELINE_OPTION
@PARAMS_OPTION
@REGISTRY_OPTION
@click.option(
    "--version-name",
    default=None,
    help="Pipeline version name [default: <package version>+g<commit>, '.dirty' if modified].",
)
def upload_cmd(
    host: str | None,
    token: str | None,
    namespace: str | None,
    pipeline_name: str,
    params_file: Path,
    registry: str | None,
    version_name: str | None,
) -> None:
    """Upload the pipeline: create it on first upload, else add a new version."""
    import tempfile

    from hairseg_pipelines import kfp_api
    from hairseg_pipelines.compile import compile_to_text
    from hairseg_pipelines.versioning import PIPELINE_VERSION, upload_version_name

    params, image = _params(params_file), _image(registry)
    client = kfp_api.connect(host or "", token, namespace)
    version_name = version_name or upload_version_name(".")
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / f"{pipeline_name}-v{PIPELINE_VERSION}.yaml"
        package.write_text(compile_to_text(pipeline_name, params, image))
        info = kfp_api.upload(
            client,
            host or "",
            package,
            pipeline_name,
            version_name,
            description=f"{pipeline_name} {version_name} (image {image})",
        )
    action = "created pipeline and uploaded" if info.created_pipeline else "uploaded"
    click.echo(f"{action} {pipeline_name} version {info.version_name}: {info.url}")


@pipeline.command("run")
@KFP_API_OPTIONS
@RUN_OPTIONS
@click.option(
    "--version",
    "version_name",
    default=None,
    help="Uploaded version to run: a name, or 'latest' [default: this checkout's version].",
)
@click.option("--experiment", default="hairseg", show_default=True, help="KFP experiment.")
@click.option("--run-name", default=None, help="Run name [default: <pipeline> <version> <UTC>].")
def run_cmd(
    host: str | None,
    token: str | None,
    namespace: str | None,
    pipeline_name: str,
    params_file: Path,
    param_pairs: tuple[str, ...],
    version_name: str | None,
    experiment: str,
    run_name: str | None,
) -> None:
    """Start a run of an uploaded pipeline version and print its URL."""
    from hairseg_pipelines import kfp_api
    from hairseg_pipelines.compile import build
    from hairseg_pipelines.versioning import git_commit, upload_version_name

    params = _params(params_file)
    component = build(pipeline_name, params, _image(None))
    defaults = _pipeline_defaults(component)
    args = parse_param_pairs(param_pairs, defaults, _sections(pipeline_name))
    _require({**defaults, **args})
    sha, _ = git_commit(".")
    if "git_commit" in defaults and "git_commit" not in args and sha:
        args["git_commit"] = sha
    client = kfp_api.connect(host or "", token, namespace)
    if version_name is None:
        version_name = upload_version_name(".")
    elif version_name == "latest":
        version_name = None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    info = kfp_api.start_run(
        client,
        host or "",
        pipeline_name,
        version_name,
        experiment,
        run_name or f"{pipeline_name} {version_name or 'latest'} {stamp}",
        args,
    )
    click.echo(f"started run {info.run_id} in experiment {experiment!r}: {info.url}")


@pipeline.command("run-local")
@RUN_OPTIONS
@click.option("--tiny", is_flag=True, help="Tiny data and one epoch: the whole DAG in minutes.")
@click.option("--cache/--no-cache", default=True, help="Reuse cached steps [default: on].")
@click.option(
    "--pipeline-root", type=DIR, default=Path(".hairseg/kfp-local"), help=PIPELINE_ROOT_HELP
)
@tracking_option("MLflow store")
def run_local_cmd(
    pipeline_name: str,
    params_file: Path,
    param_pairs: tuple[str, ...],
    tiny: bool,
    cache: bool,
    pipeline_root: Path,
    tracking_uri: str | None,
) -> None:
    """Run the whole pipeline on this machine with kfp.local (no cluster, no Docker)."""
    from hairseg_pipelines.compile import build
    from hairseg_pipelines.local import local_arguments, run_local

    params = _params(params_file)
    component = build(pipeline_name, params, _image(None))
    args = local_arguments(
        _pipeline_defaults(component), Path("."), tiny=tiny, tracking_uri=tracking_uri
    )
    args.update(parse_param_pairs(param_pairs, args, _sections(pipeline_name)))
    _require(args)
    run = run_local(component, args, pipeline_root, cache=cache)
    click.echo(json.dumps(run.as_dict(), indent=2))
