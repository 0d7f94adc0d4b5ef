"""ONNX Runtime inference over the shared pre/post-processing.

The artifact contract every producer (quantize) and consumer (evaluate, serving, rollout)
relies on:

- input ``image``: float32 ``(N, 3, S, S)``, normalised by :func:`hairseg.imaging.preprocess`;
- output ``logits``: float32 ``(N, 1, S, S)``;
- model metadata ``hairseg.input_size`` = ``S`` (falls back to the input's static shape).

With ``priors`` (:class:`hairseg.priors.PriorsConfig`), :meth:`OnnxSegmenter.fuse` multiplies
the hair probability by the MediaPipe head / inner-face / person priors before thresholding;
every consumer (evaluation, real-photo evaluation, serving, the canary through serving) calls
it, so they all see the same fused masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hairseg import imaging
from hairseg.errors import HairsegError
from hairseg.priors import Priors, PriorsConfig, fuse_logits

__all__ = ["INPUT_NAME", "INPUT_SIZE_KEY", "OUTPUT_NAME", "OnnxSegmenter"]

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
INPUT_SIZE_KEY = "hairseg.input_size"


class OnnxSegmenter:
    """Hair segmentation with an ONNX model: RGB images in, 0/255 masks out."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        threshold: float = 0.5,
        intra_op_threads: int = 0,
        providers: Sequence[str] | None = None,
        priors: PriorsConfig | Priors | None = None,
    ) -> None:
        import onnxruntime as ort  # heavy: imported on first use

        path = Path(model_path)
        if not path.is_file():
            raise HairsegError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        available = ort.get_available_providers()
        chosen = [p for p in (providers or available) if p in available] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise HairsegError(f"cannot load ONNX model {path}: {exc}") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        if INPUT_NAME not in inputs:
            raise HairsegError(f"{path} has no input named {INPUT_NAME!r} (found {list(inputs)})")
        meta = self.session.get_modelmeta().custom_metadata_map
        shape = inputs[INPUT_NAME].shape
        size = meta.get(INPUT_SIZE_KEY) or (shape[-1] if isinstance(shape[-1], int) else None)
        if size is None:
            raise HairsegError(f"{path} does not say its input size ({INPUT_SIZE_KEY})")
        self.path = path
        self.input_size = int(size)
        self.threshold = threshold
        self.metadata = dict(meta)
        if isinstance(priors, PriorsConfig):
            priors = Priors(priors) if priors.active else None
        self.priors: Priors | None = priors

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed batch (no priors: see :meth:`fuse`)."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def prior_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """The real-photo prior of each image (``None``: leave it unchanged). Independent
        of the network, so serving computes it while ONNX Runtime runs."""
        if self.priors is None:
            return [None] * len(images)
        return self.priors.maps(images, self.input_size)

    def fuse(
        self,
        images: Sequence[np.ndarray],
        logits: np.ndarray,
        maps: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """``logits`` of ``images`` with the real-photo priors fused (unchanged without);
        ``maps`` from :meth:`prior_maps` when they were computed already."""
        if self.priors is None:
            return logits
        return fuse_logits(logits, self.prior_maps(images) if maps is None else maps)

    def fused_logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Pre-process, run the network and fuse the priors: ``(N, 1, S, S)`` logits."""
        images = list(images)
        return self.fuse(images, self.logits(imaging.preprocess(images, self.input_size)))

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Hair probabilities at the network resolution, ``(N, S, S)``, priors fused."""
        return imaging.sigmoid(self.fused_logits(images)[:, 0])

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Masks (0/255, ``uint8``) at each input image's own resolution."""
        if not images:
            return []
        logits = self.fused_logits(images)
        sizes = [img.shape[:2] for img in images]
        return imaging.logits_to_masks(logits, sizes, threshold=self.threshold)

    def close(self) -> None:
        """Release the MediaPipe priors (ONNX Runtime needs nothing)."""
        if self.priors is not None:
            self.priors.close()
