"""The registry as the rollout sees it: candidate and champion versions, fetched ONNX files.

A thin layer over :mod:`hairseg.registry` (the one MLflow implementation) so the engine
works with small immutable :class:`ModelRef` values it can persist in rollout state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hairseg import registry
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["ModelRef", "ModelRegistry"]

_TAG_LIMIT = 4900  # MLflow model-version tag values are limited to 5000 characters


@dataclass(frozen=True)
class ModelRef:
    """One registered version, as persisted in rollout state and records."""

    version: int
    uri: str  # models:/hairseg/N (immutable, unlike an alias)
    source: str  # the registry's source field (MLflow 3: models:/m-<id>)
    artifact_uri: str = ""  # where the model directory is stored (s3://…, gs://…, file://…)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelRef:
        return cls(
            version=int(raw["version"]),
            uri=str(raw["uri"]),
            source=str(raw["source"]),
            artifact_uri=str(raw.get("artifact_uri", "")),
        )


class ModelRegistry:
    """Candidate/champion look-ups, downloads, promotion and tags for :data:`MODEL_NAME`."""

    def __init__(self, tracking_uri: str, cache_dir: str | Path) -> None:
        self.tracking_uri = tracking_uri
        self.cache_dir = Path(cache_dir)

    def resolve_optional(self, model_uri: str) -> ModelRef | None:
        """Like :meth:`resolve`, but an alias that points nowhere yet is ``None``."""
        rest = model_uri.removeprefix(f"models:/{registry.MODEL_NAME}")
        if rest.startswith("@") and model_uri.startswith(f"models:/{registry.MODEL_NAME}@"):
            info = registry.get_version(self.tracking_uri, rest[1:])
            return None if info is None else self._ref(info)
        return self.resolve(model_uri)

    def resolve(self, model_uri: str) -> ModelRef:
        """``models:/hairseg@alias`` or ``models:/hairseg/N`` → the version it names."""
        if not model_uri.startswith(f"models:/{registry.MODEL_NAME}"):
            raise HairsegError(
                f"candidate {model_uri!r} must be a registry URI of model "
                f"{registry.MODEL_NAME!r}: models:/{registry.MODEL_NAME}@candidate or "
                f"models:/{registry.MODEL_NAME}/N",
                exit_code=EXIT_USAGE,
            )
        rest = model_uri.removeprefix(f"models:/{registry.MODEL_NAME}")
        if rest.startswith("@"):
            info = registry.get_version(self.tracking_uri, rest[1:])
        elif rest.startswith("/") and rest[1:].isdigit():
            info = registry.get_version_number(self.tracking_uri, int(rest[1:]))
        else:
            raise HairsegError(
                f"cannot read model URI {model_uri!r}; accepted: models:/{registry.MODEL_NAME}"
                f"@ALIAS or models:/{registry.MODEL_NAME}/VERSION",
                exit_code=EXIT_USAGE,
            )
        if info is None:
            raise HairsegError(
                f"{model_uri} does not exist in the registry at {self.tracking_uri}",
                exit_code=EXIT_USAGE,
            )
        return self._ref(info)

    def champion(self) -> ModelRef | None:
        info = registry.get_version(self.tracking_uri, registry.CHAMPION)
        return None if info is None else self._ref(info)

    def storage_uri(self, ref: ModelRef, template: str = "{artifact_uri}") -> str:
        """The KServe ``storageUri`` for ``ref``: ``template`` filled from its fields."""
        try:
            return template.format(**ref.as_dict())
        except (KeyError, IndexError) as exc:
            raise HairsegError(
                f"rollout.kserve.storage_uri_template {template!r} names an unknown field "
                f"{exc}; accepted: {{artifact_uri}}, {{version}}, {{uri}}, {{source}}",
                exit_code=EXIT_USAGE,
            ) from None

    def fetch_onnx(self, ref: ModelRef) -> Path:
        """The version's shipped ONNX file, downloaded under the cache folder once."""
        return registry.fetch_onnx(ref.uri, self.cache_dir, self.tracking_uri)

    def promote(self, ref: ModelRef, reason: str) -> None:
        """Move ``champion`` to ``ref`` (no-op when it is already there)."""
        current = self.champion()
        if current is not None and current.version == ref.version:
            return
        registry.promote_to_champion(self.tracking_uri, ref.version, reason)

    def tag(self, ref: ModelRef, tags: Mapping[str, Any]) -> None:
        """Set version tags; long values are cut to MLflow's limit (the record has all)."""
        clipped = {}
        for key, value in tags.items():
            text = (
                value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
            )
            clipped[key] = text if len(text) <= _TAG_LIMIT else text[: _TAG_LIMIT - 3] + "..."
        registry.tag_version(self.tracking_uri, ref.version, clipped)

    def _ref(self, info: registry.ModelVersionInfo) -> ModelRef:
        download = registry.client(self.tracking_uri).get_model_version_download_uri(
            registry.MODEL_NAME, str(info.version)
        )
        return ModelRef(
            version=info.version,
            uri=f"models:/{registry.MODEL_NAME}/{info.version}",
            source=info.source,
            artifact_uri=str(download),
        )
