"""The MLflow model registry: where trained models are versioned, tagged and promoted.

Embedded default: a SQLite tracking database and a local artifact store inside the working
copy (``.hairseg/mlflow.db``, ``.hairseg/mlartifacts``); on a cluster the same functions talk
to the MLflow server that ``MLFLOW_TRACKING_URI`` names (read only by the CLI).

Conventions every consumer (serving, rollout, KFP) relies on:

- registered model :data:`MODEL_NAME`; aliases :data:`CANDIDATE` and :data:`CHAMPION`
  (never the deprecated stages);
- a version's MLflow model directory holds ``model.onnx`` (the shipped variant, fp32 or
  int8) and ``extra_files/`` with ``weights.pt`` + ``model_config.json`` (PyTorch weights,
  so training can fine-tune from it), both ONNX variants and ``selected.json``;
- lineage lives in version tags (``git_commit``, ``data_md5``, ``params_hash``,
  ``pipeline_run_id``, ``gate``, metrics).

A registration either completes (version, tags, aliases) or leaves the registry as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "EXPERIMENT_NAME",
    "MODEL_NAME",
    "ModelVersionInfo",
    "RegisterConfig",
    "RegistrationResult",
    "artifact_root_for",
    "client",
    "default_tracking_uri",
    "ensure_experiment",
    "fetch_model_dir",
    "fetch_onnx",
    "fetch_weights",
    "get_version",
    "get_version_number",
    "promote_to_champion",
    "register_model",
    "resolve_version",
    "tag_version",
]

log = logging.getLogger(__name__)

MODEL_NAME = "hairseg"
CANDIDATE = "candidate"
CHAMPION = "champion"
EXPERIMENT_NAME = "hairseg"
ONNX_FILE = "model.onnx"  # the data file of the MLflow ONNX flavour: the shipped variant
EXTRA_DIR = "extra_files"
WEIGHTS_FILE = "weights.pt"
MODEL_CONFIG_FILE = "model_config.json"
SELECTED_FILE = "selected.json"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))/?$")


@dataclass(frozen=True)
class RegisterConfig:
    """``params.yaml`` section ``register``."""

    bootstrap_champion: bool = True  # the first version to pass the gate becomes champion


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version: what rollout and serving need to know about it."""

    version: int
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistrationResult:
    """What :func:`register_model` did."""

    version: int
    run_id: str
    model_uri: str
    aliases: tuple[str, ...]
    bootstrapped_champion: bool
    tags: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "aliases": list(self.aliases),
            "bootstrapped_champion": self.bootstrapped_champion,
            "tags": dict(self.tags),
        }


def default_tracking_uri(project_root: Path) -> str:
    """``sqlite:///<root>/.hairseg/mlflow.db`` (artifacts go to ``<root>/.hairseg/mlartifacts``)."""
    db = Path(project_root).resolve() / ".hairseg" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where experiments we create keep their artifacts.

    For a SQLite store: the ``mlartifacts`` folder beside the database (MLflow would
    otherwise use ``./mlruns`` relative to whatever directory the process runs in). For a
    server or any other store: ``None``, the server decides.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "mlartifacts").resolve().as_uri()
    if tracking_uri.startswith(("file:", "/")) or "://" not in tracking_uri:
        return None  # a file store places artifacts inside itself
    return None


def client(tracking_uri: str) -> Any:
    """An :class:`mlflow.MlflowClient` on ``tracking_uri`` (tracking and registry alike)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str = EXPERIMENT_NAME) -> str:
    """Return the id of experiment ``name``, creating it with our artifact location."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=_experiment_location(tracking_uri, name))


def _experiment_location(tracking_uri: str, name: str) -> str | None:
    root = artifact_root_for(tracking_uri)
    return None if root is None else f"{root}/{name}"


@contextlib.contextmanager
def _mlflow_uris(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, then restore it."""
    import mlflow

    old_tracking = mlflow.get_tracking_uri()
    old_registry = mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_tracking)
        mlflow.set_registry_uri(old_registry)


def _to_info(mv: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        version=int(mv.version),
        run_id=mv.run_id or None,
        source=str(mv.source),
        tags=dict(mv.tags or {}),
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
    )


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def _version_or_none(lookup: Callable[[], Any]) -> ModelVersionInfo | None:
    """The model version ``lookup()`` returns, or ``None`` when MLflow says it is missing."""
    from mlflow.exceptions import MlflowException

    try:
        mv = lookup()
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise
    return _to_info(mv)


def get_version(tracking_uri: str, alias: str, name: str = MODEL_NAME) -> ModelVersionInfo | None:
    """The version ``alias`` points at, or ``None`` (no such alias or no such model)."""
    return _version_or_none(lambda: client(tracking_uri).get_model_version_by_alias(name, alias))


def get_version_number(
    tracking_uri: str, version: int, name: str = MODEL_NAME
) -> ModelVersionInfo | None:
    """Version ``version`` of ``name``, or ``None`` when it does not exist."""
    return _version_or_none(lambda: client(tracking_uri).get_model_version(name, str(version)))


def tag_version(tracking_uri: str, version: int, tags: Mapping[str, Any]) -> None:
    """Set tags on a version (values become strings; dicts and lists become JSON)."""
    c = client(tracking_uri)
    for key, value in tags.items():
        c.set_model_version_tag(MODEL_NAME, str(version), key, _tag_value(value))


def _tag_value(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def promote_to_champion(tracking_uri: str, version: int, reason: str) -> None:
    """Move ``champion`` to ``version``; tag the previous champion ``superseded_by``.

    Used by the rollout when a canary succeeds (and by :func:`register_model` at bootstrap).
    """
    from datetime import UTC, datetime

    if get_version_number(tracking_uri, version) is None:
        raise HairsegError(f"model {MODEL_NAME!r} has no version {version}", exit_code=EXIT_USAGE)
    previous = get_version(tracking_uri, CHAMPION)
    c = client(tracking_uri)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    c.set_registered_model_alias(MODEL_NAME, CHAMPION, str(version))
    tag_version(tracking_uri, version, {"promoted_at": now, "promotion_reason": reason})
    if previous is not None and previous.version != version:
        tag_version(tracking_uri, previous.version, {"superseded_by": str(version)})
        tag_version(tracking_uri, version, {"supersedes": str(previous.version)})


def _resolve_models_uri(tracking_uri: str, model_uri: str) -> ModelVersionInfo:
    match = _MODELS_URI.match(model_uri)
    if not match:
        raise HairsegError(
            f"cannot read model URI {model_uri!r}; accepted: models:/NAME@ALIAS, "
            "models:/NAME/VERSION, a .onnx file or a model directory",
            exit_code=EXIT_USAGE,
        )
    name = match["name"]
    if match["alias"]:
        info = get_version(tracking_uri, match["alias"], name)
    else:
        info = get_version_number(tracking_uri, int(match["version"]), name)
    if info is None:
        raise HairsegError(f"{model_uri} does not exist in the registry at {tracking_uri}")
    return info


def resolve_version(tracking_uri: str, model_uri: str) -> int:
    """The version number a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names now."""
    return _resolve_models_uri(tracking_uri, model_uri).version


def fetch_model_dir(model_uri: str, dst_dir: Path, tracking_uri: str) -> Path:
    """Download a registered version's MLflow model directory (``models:/`` URI)."""
    import mlflow.artifacts

    info = _resolve_models_uri(tracking_uri, model_uri)
    name = _MODELS_URI.match(model_uri)["name"]  # type: ignore[index]
    dst = Path(dst_dir) / f"{name}-v{info.version}"
    if (dst / "MLmodel").is_file():
        return dst  # versions are immutable: a complete earlier download is still right
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    source = client(tracking_uri).get_model_version_download_uri(name, str(info.version))
    with _mlflow_uris(tracking_uri):
        mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(tmp), tracking_uri=tracking_uri
        )
    found = next(tmp.rglob("MLmodel"), None)
    if found is None:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HairsegError(f"{model_uri} (source {source}) holds no MLmodel file")
    shutil.rmtree(dst, ignore_errors=True)
    found.parent.rename(dst)
    shutil.rmtree(tmp, ignore_errors=True)
    return dst


def fetch_onnx(model_uri: str, dst_dir: Path, tracking_uri: str) -> Path:
    """Resolve ``model_uri`` to a local ``.onnx`` file (the shipped variant).

    Accepts a local ``.onnx`` file, a local directory (an MLflow model directory, or a
    ``models/`` folder with ``selected.json`` / ``model.onnx``), or ``models:/NAME@ALIAS`` /
    ``models:/NAME/VERSION``, which is downloaded under ``dst_dir``.
    """
    if model_uri.startswith("models:/"):
        return _onnx_in_dir(fetch_model_dir(model_uri, dst_dir, tracking_uri))
    path = Path(model_uri.removeprefix("file://"))
    if path.is_file():
        if path.suffix != ".onnx":
            raise HairsegError(f"{path} is not an .onnx file", exit_code=EXIT_USAGE)
        return path
    if path.is_dir():
        return _onnx_in_dir(path)
    raise HairsegError(
        f"model {model_uri!r} not found: expected a .onnx file, a model directory or "
        "models:/NAME@ALIAS",
        exit_code=EXIT_USAGE,
    )


def _onnx_in_dir(path: Path) -> Path:
    selected = path / SELECTED_FILE
    if selected.is_file():
        chosen = path / json.loads(selected.read_text())["file"]
        if chosen.is_file():
            return chosen
    if (path / ONNX_FILE).is_file():
        return path / ONNX_FILE
    candidates = sorted(path.glob("*.onnx"))
    if len(candidates) == 1:
        return candidates[0]
    raise HairsegError(f"no {ONNX_FILE} (or {SELECTED_FILE}) in {path}", exit_code=EXIT_USAGE)


def fetch_weights(model_uri: str, dst_dir: Path, tracking_uri: str) -> tuple[Path, Path]:
    """PyTorch ``weights.pt`` and ``model_config.json`` of a registered version."""
    model_dir = fetch_model_dir(model_uri, dst_dir, tracking_uri)
    weights = model_dir / EXTRA_DIR / WEIGHTS_FILE
    config = model_dir / EXTRA_DIR / MODEL_CONFIG_FILE
    if not weights.is_file() or not config.is_file():
        raise HairsegError(
            f"{model_uri} carries no PyTorch weights ({EXTRA_DIR}/{WEIGHTS_FILE}); "
            "it cannot be fine-tuned"
        )
    return weights, config


def register_model(
    model_dir: Path,
    *,
    tracking_uri: str,
    metrics: Mapping[str, float],
    gate_passed: bool,
    gate_reasons: list[str],
    lineage: Mapping[str, str],
    run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    extra_artifacts: list[Path] | None = None,
    bootstrap_champion: bool = True,
) -> RegistrationResult:
    """Log ``model_dir`` (the quantize stage's output) as an MLflow ONNX model and register it.

    Always creates a new version of :data:`MODEL_NAME` tagged with lineage, metrics and the
    gate decision. When the gate passed, the version gets alias :data:`CANDIDATE`, and —
    when no champion exists yet — :data:`CHAMPION` (bootstrap). ``run_id`` continues the
    training run so metrics and model sit together; otherwise a new run is started.

    Any failure after the version was created deletes it and restores the aliases it
    moved, so the registry never holds a half-registered version.
    """
    import mlflow
    import numpy as np
    import onnx

    model_dir = Path(model_dir)
    selected_path = model_dir / SELECTED_FILE
    if not selected_path.is_file():
        raise HairsegError(f"{selected_path} not found: run `hairseg quantize` first", exit_code=2)
    selected = json.loads(selected_path.read_text())
    shipped = model_dir / selected["file"]
    required = [shipped, model_dir / WEIGHTS_FILE, model_dir / MODEL_CONFIG_FILE]
    missing = [str(p) for p in required if not p.is_file()]
    if missing:
        raise HairsegError(f"model files missing: {', '.join(missing)}", exit_code=EXIT_USAGE)
    extras = [p for p in sorted(model_dir.iterdir()) if p.is_file() and p != shipped]
    extras += [shipped]  # keep a copy under its own name too (model.int8.onnx / fp32)

    proto = onnx.load(str(shipped))
    meta = {p.key: p.value for p in proto.metadata_props}
    size = int(meta.get("hairseg.input_size", 256))

    from mlflow.models import infer_signature

    example = np.zeros((1, 3, size, size), dtype=np.float32)
    signature = infer_signature(
        {"image": example}, {"logits": np.zeros((1, 1, size, size), dtype=np.float32)}
    )

    exp_id = ensure_experiment(tracking_uri)
    c = client(tracking_uri)
    if run_id is not None:
        try:
            c.get_run(run_id)
        except Exception:
            log.warning("run %s not found in %s; starting a new run", run_id, tracking_uri)
            run_id = None
    before = {alias: get_version(tracking_uri, alias) for alias in (CANDIDATE, CHAMPION)}

    with _mlflow_uris(tracking_uri):
        with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else exp_id) as run:
            if params:
                mlflow.log_params(
                    {k: _tag_value(v)[:500] for k, v in params.items()}, synchronous=True
                )
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, synchronous=True)
            for path in extra_artifacts or []:
                if path.is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=path.name)
                elif path.is_file():
                    mlflow.log_artifact(str(path))
            info = mlflow.onnx.log_model(
                proto,
                name="model",
                signature=signature,
                input_example={"image": example},
                extra_files=[str(p) for p in extras],
                # Explicit requirements: inference would start a subprocess and load the model.
                pip_requirements=["onnxruntime>=1.20", "onnx>=1.17", "numpy"],
                onnx_execution_providers=["CPUExecutionProvider"],
                save_as_external_data=False,
                metadata={k: v for k, v in meta.items() if k.startswith("hairseg.")},
            )
            current_run = run.info.run_id
        mv = mlflow.register_model(info.model_uri, MODEL_NAME)
    version = int(mv.version)

    tags: dict[str, str] = {
        **{k: str(v) for k, v in lineage.items()},
        "run_id": current_run,
        "variant": str(selected.get("variant", "")),
        "gate": "pass" if gate_passed else "fail",
        "gate_reasons": "; ".join(gate_reasons),
        **{f"metric.{k}": f"{float(v):.6g}" for k, v in metrics.items()},
    }
    aliases: list[str] = []
    bootstrapped = False
    try:
        tag_version(tracking_uri, version, tags)
        if gate_passed:
            c.set_registered_model_alias(MODEL_NAME, CANDIDATE, str(version))
            aliases.append(CANDIDATE)
            if bootstrap_champion and before[CHAMPION] is None:
                promote_to_champion(tracking_uri, version, "bootstrap: first version to pass gate")
                aliases.append(CHAMPION)
                bootstrapped = True
    except BaseException as exc:
        _rollback(tracking_uri, version, before)
        if isinstance(exc, Exception):
            raise HairsegError(
                f"registration of {MODEL_NAME} v{version} failed and was rolled back: {exc}"
            ) from exc
        raise
    return RegistrationResult(
        version=version,
        run_id=current_run,
        model_uri=f"models:/{MODEL_NAME}/{version}",
        aliases=tuple(aliases),
        bootstrapped_champion=bootstrapped,
        tags=tags,
    )


def _rollback(
    tracking_uri: str, version: int, before: Mapping[str, ModelVersionInfo | None]
) -> None:
    """Delete a half-registered version and point the aliases back where they were."""
    c = client(tracking_uri)
    try:
        c.delete_model_version(MODEL_NAME, str(version))
    except Exception as exc:  # pragma: no cover - best effort, reported
        log.error("rollback: could not delete %s v%s: %s", MODEL_NAME, version, exc)
    for alias, info in before.items():
        try:
            if info is not None:
                c.set_registered_model_alias(MODEL_NAME, alias, str(info.version))
        except Exception as exc:  # pragma: no cover
            log.error("rollback: could not restore alias %s -> v%s: %s", alias, info, exc)
