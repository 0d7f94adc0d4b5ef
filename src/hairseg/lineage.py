"""Lineage, computed in one place: what a registered model traces back to.

Every door (``dvc repro`` through the CLI, the KFP ``register_model`` component) tags a
registered version with :func:`collect`, and the quantize stage writes the same
:func:`params_hash` into the ONNX file's ``hairseg.params_hash`` metadata, so one
configuration gets one set of lineage values whichever door produced the model.

- ``git_commit``: the commit of the code that ran (:func:`git_commit`).
- ``data_md5``: the dataset's DVC 3 directory hash, ``<md5>.dir`` (:func:`data_md5`).
- ``params_hash``: a hash of the typed :data:`PARAMS_HASH_SECTIONS` configs.
- ``pipeline_run_id``: ``dvc-local`` for ``dvc repro``, the KFP run id in a pipeline.
- ``init_source``: where training's initial weights came from (the train stage's record).
- ``pseudo_data_md5``: the DVC directory hash of the pseudo-labelled real photos training
  fine-tuned on (``train.pseudo``), ``none`` when it used none (the train stage's record).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hairseg.model import ModelConfig
    from hairseg.quantize import QuantizeConfig
    from hairseg.train import TrainConfig

__all__ = [
    "PARAMS_HASH_SECTIONS",
    "UNKNOWN",
    "collect",
    "data_md5",
    "git_commit",
    "params_hash",
]

UNKNOWN = "unknown"

#: The ``params.yaml`` sections the registered artefact's bytes depend on: the network
#: (``model``), how it was trained (``train``) and how it was exported and which variant
#: ships (``quantize``) — the params of DVC's ``train`` and ``quantize`` stages. Left out on
#: purpose:
#:
#: - ``data``: the data is identified by its content (``data_md5``), which also covers a
#:   dataset imported with ``dvc add`` that no generator parameter describes;
#: - ``validate``, ``features``, ``evaluate``, ``priors``, ``gate``, ``register``, ``rollout``,
#:   ``serve``, ...: they judge, register or serve the model but do not change it. The ONNX
#:   metadata is written by quantize, before they run, and DVC does not re-run quantize when
#:   they change, so hashing them would make the version tag disagree with the model's own
#:   metadata (and give a re-registered, byte-identical model a new hash).
PARAMS_HASH_SECTIONS: tuple[str, ...] = ("model", "train", "quantize")


def params_hash(model: ModelConfig, train: TrainConfig, quantize: QuantizeConfig) -> str:
    """16 hex digits of the sha256 of the typed :data:`PARAMS_HASH_SECTIONS` configs.

    Hashing the dataclasses (every field, defaults included, each coerced to its declared
    type), not the raw YAML, makes the hash independent of how the values arrived: a key
    left at its default hashes like the default written out, and a KFP ``Struct`` that
    widened ``1`` to ``1.0`` builds the same config as ``params.yaml`` did.
    """
    chosen = dict(zip(PARAMS_HASH_SECTIONS, (model, train, quantize), strict=True))
    blob = json.dumps(
        {name: dataclasses.asdict(cfg) for name, cfg in chosen.items()},
        sort_keys=True,
        default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def git_commit(explicit: str | None = None) -> str:
    """The commit of the code that ran.

    ``explicit`` (the KFP ``git_commit`` parameter) when given, else ``$HAIRSEG_GIT_COMMIT``
    (the container image bakes it in; it has no ``.git``), else ``HEAD`` of the git checkout
    that holds the imported ``hairseg`` package (an editable install: the code, not the
    working directory, which for ``dvc repro`` may be another project), else ``unknown``.
    """
    if explicit:
        return explicit
    if os.environ.get("HAIRSEG_GIT_COMMIT"):
        return os.environ["HAIRSEG_GIT_COMMIT"]
    package_dir = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return out.stdout.strip() or UNKNOWN


def data_md5(data_dir: str | Path | None = None, dvc_file: str | Path | None = None) -> str:
    """The dataset's DVC 3 hash ``<md5>.dir``.

    Read from ``dvc_file`` (``data.dvc``, what ``dvc add`` recorded) when that file exists,
    else computed from ``data_dir`` with the same algorithm
    (:func:`hairseg.data.ensure.dvc_dir_hash`), else ``unknown``. The two agree for the same
    bytes: ``hairseg data ensure`` checks ``data/`` against ``data.dvc`` before any stage runs.
    """
    if dvc_file is not None and Path(dvc_file).is_file():
        import yaml

        doc = yaml.safe_load(Path(dvc_file).read_text()) or {}
        outs = doc.get("outs") or [{}]
        md5 = outs[0].get("md5")
        if md5:
            return str(md5)
    if data_dir is not None and Path(data_dir).is_dir():
        from hairseg.data.ensure import dvc_dir_hash

        return dvc_dir_hash(data_dir)[0]
    return UNKNOWN


def collect(
    params_hash: str,
    *,
    pipeline_run_id: str,
    init_source: str,
    data_dir: str | Path | None = None,
    dvc_file: str | Path | None = None,
    commit: str | None = None,
    pseudo_data_md5: str = "none",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The lineage tags of a registered version (``extra``: e.g. the pipeline's name)."""
    return {
        "git_commit": git_commit(commit),
        "data_md5": data_md5(data_dir, dvc_file),
        "params_hash": params_hash,
        "pipeline_run_id": pipeline_run_id,
        "init_source": init_source,
        "pseudo_data_md5": pseudo_data_md5,
        **dict(extra or {}),
    }
