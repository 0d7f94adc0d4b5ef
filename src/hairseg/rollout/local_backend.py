"""The embedded backend: stable and canary predictor servers on loopback, replayed traffic.

The stable server serves the champion, the canary server the candidate — both the real
serving code (``python -m hairseg_serving``). Each step replays the dataset's test-split images,
routing request ``i`` to the canary when a seeded hash of ``i`` falls under the step's
percentage; a sample of the canary's requests is mirrored to stable to compare masks.
With ``rollout.local.real_photos`` set, every step also sends each real photo of that set
to both servers, and the step's mask disagreement is the worse of the two samples' (the
synthetic test split cannot show a candidate that breaks on photographs).
"Traffic" here is the route table persisted in ``.hairseg/rollout_state.json`` with the
rollout state (the local analogue of the InferenceService spec).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from hairseg import imaging
from hairseg.errors import HairsegError
from hairseg.jsonio import write_json_atomic
from hairseg.rollout.config import LocalConfig, PolicyConfig
from hairseg.rollout.models import ModelRef, ModelRegistry
from hairseg.rollout.policy import ArmMetrics, StepObservation
from hairseg.rollout.servers import GateError, PredictorProcess, smoke_test
from hairseg.rollout.traffic import (
    PredictError,
    TrafficImage,
    load_traffic_sample,
    mask_disagreement,
    p95,
    routes_to_canary,
)

__all__ = ["LocalBackend", "read_local_state"]

log = logging.getLogger(__name__)


def read_local_state(path: str | Path) -> dict[str, Any]:
    """The persisted file: ``{"rollout": state | None, "traffic": route table | None}``."""
    path = Path(path)
    if not path.is_file():
        return {"rollout": None, "traffic": None}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HairsegError(
            f"rollout state {path} is not valid JSON ({exc}); inspect it, then delete it "
            "to start afresh"
        ) from None
    if not isinstance(data, dict):
        raise HairsegError(f"rollout state {path} must hold a JSON object")
    return {"rollout": data.get("rollout"), "traffic": data.get("traffic")}


class LocalBackend:
    """Two loopback predictor servers and a deterministic replay of the traffic sample."""

    name = "local"

    def __init__(
        self,
        cfg: LocalConfig,
        policy: PolicyConfig,
        models: ModelRegistry,
        *,
        dataset: str | Path,
        state_path: str | Path = ".hairseg/rollout_state.json",
        model_name: str = "hairseg",
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        self.models = models
        self.dataset = Path(dataset)
        self.state_path = Path(state_path)
        self.model_name = model_name
        self._sample: list[TrafficImage] | None = None
        self._real: list[TrafficImage] | None = None
        self._servers: dict[str, tuple[int, PredictorProcess]] = {}  # role -> (version, server)
        self._cursor = 0  # request index: continues across steps so steps see fresh images

    # -- state ----------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        return read_local_state(self.state_path)["rollout"]

    def traffic(self) -> dict[str, Any] | None:
        return read_local_state(self.state_path)["traffic"]

    def save_state(self, state: dict[str, Any]) -> None:
        self._write(state, self.traffic())

    def _write(self, state: dict[str, Any], traffic: dict[str, Any] | None) -> None:
        write_json_atomic(self.state_path, {"rollout": state, "traffic": traffic})

    # -- lifecycle ------------------------------------------------------------------------
    def preflight(self) -> None:
        if not self.dataset.is_dir():
            raise HairsegError(
                f"dataset folder {self.dataset} not found: the local rollout replays its "
                f"'{self.cfg.split}' images as traffic (run `hairseg data generate` first)",
                exit_code=2,
            )

    def sample(self) -> list[TrafficImage]:
        if self._sample is None:
            self._sample = load_traffic_sample(self.dataset, self.cfg.split)
        return self._sample

    def real_sample(self) -> list[TrafficImage]:
        """The real photos to replay each step ([] when off or their images are absent)."""
        if self._real is None:
            self._real = []
            if self.cfg.real_photos:
                from hairseg.data.real_portraits import require_images

                try:
                    require_images(Path(self.cfg.real_photos))
                    self._real = load_traffic_sample(self.cfg.real_photos, "test")
                except HairsegError as exc:
                    log.warning("real-photo replay off: %s", exc)
        return self._real

    def _real_disagreement(
        self, canary: PredictorProcess, stable: PredictorProcess, error_samples: list[str]
    ) -> tuple[list[float], dict[str, int]]:
        """1 - IoU(canary, stable) on every real photo; (values, failed requests per role)."""
        values, failed = [], {"canary": 0, "stable": 0}
        for image in self.real_sample():
            masks = {}
            for role, server in (("canary", canary), ("stable", stable)):
                assert server.client is not None
                try:
                    masks[role], _ = server.client.predict_mask(image.data)
                except PredictError as exc:
                    failed[role] += 1
                    if len(error_samples) < 5:
                        error_samples.append(f"{role} (real photo) {image.id}: {exc}")
            if len(masks) == 2:
                values.append(mask_disagreement(masks["canary"], masks["stable"]))
        return values, failed

    def _servers_for(self, wanted: dict[str, ModelRef]) -> dict[str, PredictorProcess]:
        """Make sure a server runs for each role's version (started in parallel)."""
        launched: list[PredictorProcess] = []
        for role, ref in wanted.items():
            running = self._servers.get(role)
            if running is not None and running[0] == ref.version:
                continue
            if running is not None:
                running[1].stop()
            server = PredictorProcess(
                self.models.fetch_onnx(ref),
                label=f"{role} (v{ref.version})",
                model_name=self.model_name,
                start_timeout_s=self.cfg.server_start_timeout_s,
                request_timeout_s=self.cfg.request_timeout_s,
            )
            self._servers[role] = (ref.version, server)
            launched.append(server.launch())
        for server in launched:
            try:
                server.wait_ready()
            except GateError as exc:
                if server is self._servers.get("canary", (None, None))[1]:
                    raise
                # The stable side failing says nothing about the candidate: not a rejection.
                raise HairsegError(f"cannot start the stable server: {exc}") from None
        return {role: self._servers[role][1] for role in wanted}

    def gate(self, candidate: ModelRef, stable: ModelRef) -> dict[str, Any]:
        """Start the canary server on the candidate (and stable beside it); one real request."""
        first = self.sample()[0]
        servers = self._servers_for({"canary": candidate, "stable": stable})
        h, w = imaging.decode_image(first.data).shape[:2]
        latency = smoke_test(servers["canary"], first.data, (h, w))
        return {"smoke_image": first.id, "smoke_latency_ms": round(latency, 2)}

    def close(self) -> None:
        for _, server in self._servers.values():
            server.stop()
        self._servers.clear()

    # -- traffic --------------------------------------------------------------------------
    def shift(self, candidate: ModelRef, stable: ModelRef, percent: int, state: dict) -> None:
        self._servers_for({"canary": candidate, "stable": stable})
        self._write(
            state,
            {"stable": stable.as_dict(), "canary": candidate.as_dict(), "canary_percent": percent},
        )

    def promote(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        self._write(state, {"stable": candidate.as_dict(), "canary": None, "canary_percent": 0})

    def rollback(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        self._write(state, {"stable": stable.as_dict(), "canary": None, "canary_percent": 0})

    def observe(self, percent: int) -> tuple[StepObservation, dict[str, Any]]:
        """Replay requests until the canary has a full sample (or the step budget is spent)."""
        sample = self.sample()
        canary = self._servers["canary"][1]
        stable = self._servers["stable"][1]
        assert canary.client is not None and stable.client is not None
        policy, cfg = self.policy, self.cfg
        lat: dict[str, list[float]] = {"canary": [], "stable": []}
        sent = {"canary": 0, "stable": 0, "mirror": 0}
        errors = {"canary": 0, "stable": 0, "mirror": 0}
        error_samples: list[str] = []
        disagreements: list[float] = []
        for _ in range(cfg.max_requests_per_step):
            if sent["canary"] >= policy.min_requests and len(disagreements) >= policy.min_mirrored:
                break
            budget = policy.max_error_rate * max(sent["canary"], policy.min_requests)
            if errors["canary"] > budget:
                break  # the error budget is spent: more traffic only hurts users
            if (
                len(disagreements) >= max(policy.min_mirrored, 1)
                and float(np.mean(disagreements)) > policy.max_disagreement
            ):
                break  # enough mirrored evidence that its masks are wrong: stop early
            index = self._cursor
            self._cursor += 1
            image = sample[index % len(sample)]
            role = "canary" if routes_to_canary(cfg.seed, index, percent) else "stable"
            server = canary if role == "canary" else stable
            assert server.client is not None
            sent[role] += 1
            try:
                mask, ms = server.client.predict_mask(image.data)
            except PredictError as exc:
                errors[role] += 1
                if len(error_samples) < 5:
                    error_samples.append(f"{role} {image.id}: {exc}")
                continue
            lat[role].append(ms)
            if role == "canary" and self._mirrored(index):
                sent["mirror"] += 1
                try:
                    reference, _ = stable.client.predict_mask(image.data)
                except PredictError as exc:
                    errors["mirror"] += 1
                    if len(error_samples) < 5:
                        error_samples.append(f"stable (mirror) {image.id}: {exc}")
                    continue
                disagreements.append(mask_disagreement(mask, reference))
        disagreement = float(np.mean(disagreements)) if disagreements else None
        real, real_failed = self._real_disagreement(canary, stable, error_samples)
        # A canary that fails on a photograph fails a user: its errors count.
        sent["canary"] += len(self.real_sample())
        errors["canary"] += real_failed["canary"]
        real_mean = float(np.mean(real)) if real else None
        if real_mean is not None:
            disagreement = real_mean if disagreement is None else max(disagreement, real_mean)
        observation = StepObservation(
            canary=ArmMetrics(sent["canary"], errors["canary"], p95(lat["canary"])),
            stable=ArmMetrics(sent["stable"], errors["stable"], p95(lat["stable"])),
            mirrored=len(disagreements),
            disagreement=disagreement,
        )
        details = {
            "traffic_disagreement": float(np.mean(disagreements)) if disagreements else None,
            "real_photo_disagreement": real_mean,
            "real_photo_mirrored": len(real),
            "real_photo_stable_errors": real_failed["stable"],
            "stable_mirror_requests": sent["mirror"],
            "stable_mirror_errors": errors["mirror"],
            "error_samples": error_samples,
            "canary_p50_ms": _p50(lat["canary"]),
            "stable_p50_ms": _p50(lat["stable"]),
        }
        return observation, details

    def _mirrored(self, index: int) -> bool:
        digest = hashlib.blake2b(f"mirror:{self.cfg.seed}:{index}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big") / 2**64 < self.cfg.mirror_fraction


def _p50(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None
