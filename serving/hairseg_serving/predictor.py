"""The KServe predictor: a :class:`kserve.Model` whose stages call the core.

``load()`` opens the ONNX model with ONNX Runtime, runs a warm-up batch and only then
sets ``ready``. ``preprocess`` parses and decodes (V1 JSON or a V2 ``InferRequest``),
``predict`` runs the network (micro-batched across concurrent requests), ``postprocess``
turns logits into masks at the input resolution and, on request, into the try-on of the
asked tier (:func:`hairseg.tryon.try_on`: premium's second network pass, the soft matte,
the LAB recolour), then encodes. Each stage's time goes to
``hairseg_stage_seconds{stage=...}``, the ``Server-Timing`` response header and, for V1,
the response's ``processing_ms``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import (
    InferOutput,
    InferRequest,
    InferResponse,
    to_http_parameters,
)

from hairseg import imaging
from hairseg.errors import HairsegError, ImageDecodeError
from hairseg.inference import OnnxSegmenter
from hairseg.tryon import TIERS, parse_shade, try_on
from hairseg_serving.batching import MicroBatcher
from hairseg_serving.metrics import (
    BATCH_SIZE,
    FEATURE_LOOKUPS,
    INFERENCE_LOG_RECORDS,
    STAGE_SECONDS,
)
from hairseg_serving.protocol import (
    INPUT_NAME,
    OPTION_KEYS,
    V2_OUTPUTS,
    ImageJob,
    Options,
    b64decode_image,
    merge_options,
    parse_options,
    parse_v1,
)
from hairseg_serving.settings import ServeConfig

__all__ = ["HairsegModel", "model_version_of"]

log = logging.getLogger(__name__)


def model_version_of(path: Path, metadata: Mapping[str, str]) -> str:
    """The version clients see: the model's own ``hairseg.model_version`` metadata, else
    the first 12 hex digits of the file's SHA-256 (stable across copies and restarts)."""
    if metadata.get("hairseg.model_version"):
        return str(metadata["hairseg.model_version"])
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"sha256:{digest[:12]}"


@dataclass
class _Work:
    """A request travelling through the stages."""

    jobs: list[ImageJob]
    v2: InferRequest | None
    request_id: str
    timings: dict[str, float]
    logits: np.ndarray | None = None


class _ProfileCache:
    """Customer profiles from the Feast online store, cached for a few seconds.

    Feast unavailable (no repo, not applied, store error): logged once, then every
    request falls back to the defaults; an unknown customer is a normal miss.
    """

    def __init__(self, repo: str, ttl_s: float) -> None:
        self.repo = repo
        self.ttl_s = ttl_s
        self._online: Any = None
        self._failed = False
        self._warned = False
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            self._store()

    def _store(self) -> Any:
        if self._online is None and not self._failed:
            try:
                from hairseg.features.online import OnlineFeatures

                self._online = OnlineFeatures(self.repo)
            except Exception as exc:  # Feast missing or repo not applied: serve on
                self._failed = True
                log.warning(
                    "feast online store unavailable (%s: %s); customer defaults are off",
                    type(exc).__name__,
                    exc,
                    extra={"feature_repo": self.repo},
                )
        return self._online

    def get(self, customer_id: str) -> Any:
        now = time.monotonic()
        hit = self._cache.get(customer_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            FEATURE_LOOKUPS.labels("cached").inc()
            return hit[1]
        with self._lock:
            store = self._store()
        if store is None:
            FEATURE_LOOKUPS.labels("error").inc()
            return None
        try:
            profile = store.customer_profile(customer_id)
        except Exception as exc:
            FEATURE_LOOKUPS.labels("error").inc()
            if not self._warned:
                self._warned = True
                log.warning("feast lookup failed (%s: %s); using defaults", type(exc).__name__, exc)
            return None
        FEATURE_LOOKUPS.labels("hit" if profile is not None else "miss").inc()
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[customer_id] = (now, profile)
        return profile


class HairsegModel(Model):
    """Hair masks and try-on from an ONNX model that follows the hairseg artifact contract."""

    def __init__(self, name: str, model_path: str | Path, config: ServeConfig) -> None:
        super().__init__(name, return_response_headers=True)
        self.model_path = Path(model_path)
        self.config = config
        self.segmenter: OnnxSegmenter | None = None
        self.model_version = ""
        self._batcher: MicroBatcher | None = None
        self._prior_pool: ThreadPoolExecutor | None = None
        self._ort_thread: ThreadPoolExecutor | None = None
        self._profiles: _ProfileCache | None = None
        self._log_writer: Any = None
        self._default_shade = parse_shade(config.default_color)
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------

    def load(self) -> bool:
        cfg = self.config
        self.segmenter = OnnxSegmenter(
            self.model_path,
            threshold=cfg.threshold,
            intra_op_threads=cfg.intra_op_threads,
            priors=cfg.priors,
        )
        self.model_version = model_version_of(self.model_path, self.segmenter.metadata)
        size = self.segmenter.input_size
        # Warm-up: the first runs pay for memory planning and codec set-up; do every
        # stage once (and each batch size micro-batching will use) before saying ready.
        rng = np.random.default_rng(0)
        for n in sorted({1, min(2, cfg.max_batch_size), cfg.max_batch_size}):
            images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
            masks = self.segmenter.predict(images)
        rgb = imaging.decode_image(imaging.encode_jpeg(images[0]))
        prob = self.segmenter.probabilities([rgb])[0]
        for tier in TIERS:
            tryon, _ = try_on(
                rgb,
                prob,
                self._default_shade,
                tier=tier,
                logits_fn=self.segmenter.logits,
                input_size=size,
            )
        imaging.encode_png(masks[0], compression=cfg.png_compression)
        imaging.encode_jpeg(tryon, quality=cfg.jpeg_quality)
        imaging.image_statistics(rgb, masks[0])
        if self.segmenter.priors is not None and any(self.segmenter.priors.available.values()):
            # The face detector runs on this thread while ONNX Runtime runs the network
            # (both release the GIL): the priors cost the request little wall time. With
            # no prior model found every map is None (fusion is the identity): no thread
            # hop per request (py-spy: ~7 % of the request path, docs/BENCHMARKS.md).
            self._prior_pool = ThreadPoolExecutor(1, thread_name_prefix="hairseg-priors")
        if cfg.max_batch_size == 1:
            # The network runs on a thread of its own (ORT releases the GIL), one request
            # at a time: the event loop stays free to read, decode and count the requests
            # that wait, so serve.max_inflight sees the queue and sheds past it. Run inline
            # a request never yields: the queue would sit unseen in socket buffers and a
            # burst end in client timeouts (bench/serve_faults.py burst).
            self._ort_thread = ThreadPoolExecutor(1, thread_name_prefix="hairseg-ort")
        else:
            self._batcher = MicroBatcher(
                self.segmenter.logits,
                max_batch_size=cfg.max_batch_size,
                window_s=cfg.batch_window_ms / 1000.0,
            )
        if cfg.feature_repo:
            self._profiles = _ProfileCache(cfg.feature_repo, cfg.feature_cache_seconds)
            self._profiles.open()  # pay Feast's import and registry parse before "ready"
        if cfg.inference_log_dir:
            from hairseg.monitoring.inference_log import InferenceLogWriter

            self._log_writer = InferenceLogWriter(cfg.inference_log_dir)
        self._stopped = False
        self.ready = True
        log.info(
            "model loaded",
            extra={
                "model_name": self.name,
                "model_path": str(self.model_path),
                "model_version": self.model_version,
                "input_size": size,
            },
        )
        return self.ready

    def stop(self) -> None:
        """Flush the inference log and stop the network thread. Idempotent."""
        self.ready = False
        if self._stopped:
            return
        self._stopped = True
        if self._batcher is not None:
            self._batcher.close()
        if self._prior_pool is not None:
            self._prior_pool.shutdown(wait=True)
        if self._ort_thread is not None:
            self._ort_thread.shutdown(wait=True)
        if self.segmenter is not None:
            self.segmenter.close()
        if self._log_writer is not None:
            try:
                self._log_writer.close()
            except Exception:
                log.exception("inference log close failed")
        log.info("model stopped", extra={"model_name": self.name})

    def __getstate__(self) -> dict[str, Any]:
        # KServe's multi-worker mode pickles the model into each worker process: send the
        # recipe, not the ONNX Runtime session; the worker loads its own.
        return {"name": self.name, "model_path": str(self.model_path), "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["model_path"], state["config"])
        self.load()

    # -- stages ----------------------------------------------------------------------

    def validate(self, payload: Any) -> Any:
        return payload  # preprocess has validated everything already

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Work:
        start = time.perf_counter()
        headers = headers or {}
        request_id = headers.get("x-request-id", "")
        if isinstance(payload, InferRequest):
            jobs = self._parse_v2(payload)
            v2 = payload
        else:
            jobs = parse_v1(payload, max_instances=self.config.max_instances)
            v2 = None
        if self._profiles is not None and any(j.options.customer_id for j in jobs):
            await asyncio.to_thread(self._apply_profiles, jobs)
        for job in jobs:
            try:
                job.rgb = imaging.decode_image(job.data, max_pixels=self.config.max_pixels)
            except ImageDecodeError as exc:
                raise InvalidInput(f"{job.where}: {exc}") from None
            job.data = b""
            self._fill_defaults(job)
        elapsed = time.perf_counter() - start
        STAGE_SECONDS.labels("decode").observe(elapsed)
        return _Work(jobs, v2, request_id, {"decode": elapsed})

    async def predict(
        self,
        work: _Work,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> _Work:
        assert self.segmenter is not None, "predict before load"
        start = time.perf_counter()
        images = [j.rgb for j in work.jobs]
        maps = None
        if self._prior_pool is not None:
            maps = self._prior_pool.submit(self.segmenter.prior_maps, images)
        batch = imaging.preprocess(images, self.segmenter.input_size)
        if self._batcher is not None:
            logits = await self._batcher.submit(batch)
        else:
            BATCH_SIZE.observe(len(batch))
            assert self._ort_thread is not None, "predict before load"
            logits = await asyncio.get_running_loop().run_in_executor(
                self._ort_thread, self.segmenter.logits, batch
            )
        mid = time.perf_counter()
        STAGE_SECONDS.labels("infer").observe(mid - start)
        work.timings["infer"] = mid - start
        if maps is not None:
            # The real-photo priors (face box -> head region, inner face): the same fusion
            # evaluation scores (OnnxSegmenter.fuse); "priors" = the wait after the network.
            work.logits = self.segmenter.fuse(images, logits, await asyncio.wrap_future(maps))
            elapsed = time.perf_counter() - mid
            STAGE_SECONDS.labels("priors").observe(elapsed)
            work.timings["priors"] = elapsed
        else:
            work.logits = logits
        return work

    async def postprocess(
        self,
        work: _Work,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        cfg = self.config
        start = time.perf_counter()
        assert work.logits is not None
        sizes = [j.rgb.shape[:2] for j in work.jobs]
        masks = imaging.logits_to_masks(work.logits, sizes, threshold=cfg.threshold)
        stages: dict[str, float] = {}
        for i, (job, mask) in enumerate(zip(work.jobs, masks, strict=True)):
            job.mask = mask
            job.coverage = float(np.count_nonzero(mask) / mask.size)
            if job.options.output in ("tryon", "both"):
                assert self.segmenter is not None
                job.tryon, _ = try_on(
                    job.rgb,
                    imaging.sigmoid(work.logits[i, 0].astype(np.float32)),
                    job.options.color or self._default_shade,
                    tier=job.options.tier or cfg.default_tier,
                    intensity=job.options.intensity,
                    logits_fn=self.segmenter.logits,
                    input_size=self.segmenter.input_size,
                    timings=stages,
                )
            self._log_statistics(job, work.request_id, multi=len(work.jobs) > 1)
        for stage, seconds in stages.items():
            STAGE_SECONDS.labels(stage).observe(seconds)
            work.timings[stage] = seconds
        mid = time.perf_counter()
        post = mid - start - sum(stages.values())  # masks, statistics: the try-on stages apart
        STAGE_SECONDS.labels("postprocess").observe(post)
        work.timings["postprocess"] = post
        response = self._encode_v2(work) if work.v2 is not None else self._encode_v1(work)
        elapsed = time.perf_counter() - mid
        STAGE_SECONDS.labels("encode").observe(elapsed)
        work.timings["encode"] = elapsed
        if isinstance(response, dict):
            response["processing_ms"] = {k: round(v * 1000, 3) for k, v in work.timings.items()}
        if response_headers is not None:
            response_headers["server-timing"] = ", ".join(
                f"{k};dur={v * 1000:.3f}" for k, v in work.timings.items()
            )
            response_headers["x-model-version"] = self.model_version
        return response

    # -- helpers ---------------------------------------------------------------------

    def _parse_v2(self, request: InferRequest) -> list[ImageJob]:
        names = [i.name for i in request.inputs]
        if names != [INPUT_NAME]:
            raise InvalidInput(
                f"expected exactly one input named {INPUT_NAME!r} (BYTES, shape [N]), got {names}"
            )
        inp = request.inputs[0]
        if inp.datatype != "BYTES":
            raise InvalidInput(
                f"input {INPUT_NAME!r} must have datatype BYTES (encoded images), got {inp.datatype!r}"
            )
        shape = list(inp.shape or [])
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
            raise InvalidInput(f"input {INPUT_NAME!r} must have shape [N] or [N, 1], got {shape}")
        if shape[0] > self.config.max_instances:
            raise InvalidInput(
                f"too many images: {shape[0]}; the limit is {self.config.max_instances} per request"
            )
        if inp._raw_data is not None:  # the binary-data extension: raw encoded images
            try:
                items = list(inp.as_numpy().reshape(-1))
            except Exception as exc:
                raise InvalidInput(
                    f"input {INPUT_NAME!r}: binary data does not hold {shape[0]} length-prefixed "
                    f"images ({type(exc).__name__}: {exc})"
                ) from None
            raw = True
        else:
            items = list(_flatten(inp.data))
            raw = False
        if len(items) != shape[0]:
            raise InvalidInput(
                f"input {INPUT_NAME!r} has shape {shape} but holds {len(items)} element(s)"
            )
        base = parse_options(_params(request.parameters), "parameters", allow=OPTION_KEYS)
        options = merge_options(
            base,
            parse_options(
                _params(inp.parameters), f"inputs[{INPUT_NAME}].parameters", allow=OPTION_KEYS
            ),
        )
        requested = [o.name for o in (request.request_outputs or [])]
        unknown = sorted(set(requested) - set(V2_OUTPUTS))
        if unknown:
            raise InvalidInput(f"unknown output(s) {unknown}; available: {', '.join(V2_OUTPUTS)}")
        if "tryon" in requested:
            if options.output == "mask":
                raise InvalidInput("output 'tryon' was requested but parameters.output is 'mask'")
            options.output = options.output or "both"
        jobs = []
        for i, item in enumerate(items):
            where = f"{INPUT_NAME}[{i}]"
            if raw:
                data = bytes(item)
                if not data:
                    raise InvalidInput(f"{where} is empty (0 bytes)")
            else:
                data = b64decode_image(item, f"{where} (base64 in JSON)")
            jobs.append(
                ImageJob(data, Options(**{k: getattr(options, k) for k in OPTION_KEYS}), where)
            )
        return jobs

    def _apply_profiles(self, jobs: list[ImageJob]) -> None:
        """Fill omitted options from the customer's profile, when they consented."""
        assert self._profiles is not None
        for job in jobs:
            customer = job.options.customer_id
            if not customer:
                continue
            profile = self._profiles.get(customer)
            job.profile = profile
            if profile is None or not profile.consent_personalisation:
                continue
            if job.options.color is None and profile.preferred_shade:
                try:
                    job.options.color = parse_shade(profile.preferred_shade)
                except HairsegError:
                    log.warning("customer %s has an unknown preferred shade", customer)
            preferred = profile.preferred_intensity
            if job.options.intensity is None and preferred is not None and 0 <= preferred <= 1:
                job.options.intensity = float(preferred)

    def _fill_defaults(self, job: ImageJob) -> None:
        o = job.options
        cfg = self.config
        o.intensity = cfg.default_intensity if o.intensity is None else o.intensity
        o.output = o.output or cfg.default_output
        o.tryon_format = o.tryon_format or "jpeg"
        o.tier = o.tier or cfg.default_tier

    def _log_statistics(self, job: ImageJob, request_id: str, *, multi: bool) -> None:
        if self._log_writer is None:
            return
        profile = job.profile
        consented = profile is not None and profile.consent_monitoring
        if not consented and not (self.config.log_anonymous and not job.options.customer_id):
            return
        stats = imaging.image_statistics(job.rgb, job.mask).as_dict()
        record = {
            "request_id": request_id or "unknown",
            "customer_id": job.options.customer_id,
            "model_version": self.model_version,
            "event_timestamp": datetime.now(UTC),
            **stats,
        }
        if multi:  # one record per image; keep ids unique
            record["request_id"] = f"{record['request_id']}/{job.where}"
        try:
            self._log_writer.append(record)
            INFERENCE_LOG_RECORDS.inc()
        except Exception:
            log.exception("inference log append failed")

    def _encode_v1(self, work: _Work) -> dict[str, Any]:
        cfg = self.config
        predictions = []
        for job in work.jobs:
            mask_png = imaging.encode_png(job.mask, compression=cfg.png_compression)
            pred: dict[str, Any] = {
                "mask_png_b64": base64.b64encode(mask_png).decode("ascii"),
                "hair_coverage": round(job.coverage, 6),
                "width": int(job.rgb.shape[1]),
                "height": int(job.rgb.shape[0]),
            }
            if job.tryon is not None:
                encoded = self._encode_tryon(job)
                pred["tryon_b64"] = base64.b64encode(encoded).decode("ascii")
                pred["tryon_format"] = job.options.tryon_format
                pred["color"] = (job.options.color or self._default_shade).name
                pred["intensity"] = job.options.intensity
                pred["tier"] = job.options.tier
            predictions.append(pred)
        return {
            "model_name": self.name,
            "model_version": self.model_version,
            "predictions": predictions,
        }

    def _encode_tryon(self, job: ImageJob) -> bytes:
        if job.options.tryon_format == "png":
            return imaging.encode_png(job.tryon, compression=self.config.png_compression)
        return imaging.encode_jpeg(job.tryon, quality=self.config.jpeg_quality)

    def _encode_v2(self, work: _Work) -> InferResponse:
        request = work.v2
        assert request is not None
        requested = {o.name: o for o in (request.request_outputs or [])}

        def binary(name: str) -> bool:
            if requested:
                return bool(requested[name].binary_data) if name in requested else False
            return bool(request.use_binary_outputs)

        def bytes_output(name: str, blobs: list[bytes], content_type: str) -> InferOutput:
            raw = binary(name)
            values = blobs if raw else [base64.b64encode(b).decode("ascii") for b in blobs]
            params = {"content_type": content_type}
            if not raw:
                params["encoding"] = "base64"
            return InferOutput(
                name, [len(blobs)], "BYTES", np.array(values, dtype=np.object_), params
            )

        jobs = work.jobs
        outputs = [
            bytes_output(
                "mask",
                [imaging.encode_png(j.mask, compression=self.config.png_compression) for j in jobs],
                "image/png",
            ),
            InferOutput(
                "hair_coverage",
                [len(jobs)],
                "FP32",
                np.array([j.coverage for j in jobs], dtype=np.float32),
            ),
        ]
        if jobs[0].tryon is not None:
            fmt = jobs[0].options.tryon_format
            outputs.append(
                bytes_output("tryon", [self._encode_tryon(j) for j in jobs], f"image/{fmt}")
            )
        return InferResponse(
            response_id=request.id or work.request_id,
            model_name=self.name,
            model_version=self.model_version,
            infer_outputs=outputs,
            use_binary_outputs=bool(request.use_binary_outputs),
            requested_outputs=request.request_outputs,
        )


def _params(parameters: Any) -> dict[str, Any]:
    if not parameters:
        return {}
    if isinstance(parameters, Mapping):
        return {k: _plain(v) for k, v in parameters.items()}
    return dict(to_http_parameters(parameters))


def _plain(value: Any) -> Any:
    # KServe's pydantic models may wrap parameters; unwrap to JSON-ish values.
    return getattr(value, "root", value)


def _flatten(data: Any) -> list[Any]:
    if data is None:
        return []
    if isinstance(data, np.ndarray):
        return list(data.reshape(-1))
    out: list[Any] = []
    for item in data:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out
