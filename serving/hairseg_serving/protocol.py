"""Request parsing and response formatting for V1 and V2 (open inference protocol).

Everything a client can get wrong is checked here and raised as
:class:`kserve.errors.InvalidInput` (HTTP 400, ``{"error": "..."}``) with the offending
field, its value and what would be accepted. Images are decoded by the core
(:func:`hairseg.imaging.decode_image`), which also enforces the pixel limit.

V1 ``POST /v1/models/{name}:predict``::

    {"instances": [{"image_b64": "...", "color": "copper", "intensity": 0.8,
                    "output": "mask|tryon|both", "tryon_format": "jpeg|png",
                    "tier": "fast|standard|premium", "customer_id": "c-001"}]}
    -> {"predictions": [{"mask_png_b64", "hair_coverage", "width", "height",
                         ["tryon_b64", "tryon_format", "color", "intensity", "tier"]}],
        "model_name", "model_version", "processing_ms": {stage: ms}}

V2 ``POST /v2/models/{name}/infer``: one BYTES input ``image`` of shape ``[N]`` (or
``[N, 1]``) holding encoded images (raw with the binary-data extension, base64 text in
JSON); options as request ``parameters`` (an input's own parameters override them).
Outputs: ``mask`` BYTES ``[N]`` (PNG), ``hair_coverage`` FP32 ``[N]`` and, when the
output option asks for it, ``tryon`` BYTES ``[N]`` (JPEG or PNG). BYTES outputs are raw
when binary output is requested (``binary_data_output`` or an output's ``binary_data``),
else base64 text (output parameter ``encoding: base64``).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from kserve.errors import InvalidInput

from hairseg.errors import HairsegError
from hairseg.tryon import Shade, parse_shade
from hairseg_serving.settings import OUTPUT_CHOICES, TIER_CHOICES, TRYON_FORMATS

__all__ = [
    "INPUT_NAME",
    "OPTION_KEYS",
    "V1_FIELDS",
    "V2_OUTPUTS",
    "ImageJob",
    "Options",
    "b64decode_image",
    "parse_options",
    "parse_v1",
]

INPUT_NAME = "image"
V2_OUTPUTS = ("mask", "hair_coverage", "tryon")
OPTION_KEYS = ("color", "intensity", "output", "tryon_format", "tier", "customer_id")
V1_FIELDS = ("image_b64", *OPTION_KEYS)
# Parameters KServe and its clients use for the binary-data extension; not ours to check.
_PROTOCOL_PARAMETERS = frozenset(
    {"binary_data_output", "binary_data", "binary_data_size", "content_type"}
)
_MAX_CUSTOMER_ID = 128


@dataclass
class Options:
    """Per-request options; ``None`` means "not given" (Feast or the defaults fill it)."""

    color: Shade | None = None
    intensity: float | None = None
    output: str | None = None
    tryon_format: str | None = None
    tier: str | None = None
    customer_id: str | None = None


@dataclass
class ImageJob:
    """One image to segment, with its options; filled in stage by stage."""

    data: bytes
    options: Options
    where: str  # how the client names this image in errors: "instances[0]", "image[2]"
    profile: Any = None  # the customer's Feast profile, when looked up
    rgb: Any = None
    mask: Any = None
    coverage: float = 0.0
    tryon: Any = None
    encoded: dict[str, bytes] = field(default_factory=dict)


def parse_options(raw: Mapping[str, Any], where: str, *, allow: tuple[str, ...]) -> Options:
    """Validate the option fields in ``raw``; unknown keys are errors."""
    unknown = sorted(set(raw) - set(allow) - _PROTOCOL_PARAMETERS)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(allow)}"
        )
    opts = Options()
    color = raw.get("color")
    if color is not None:
        try:
            opts.color = parse_shade(color) if isinstance(color, str) else parse_shade("")
        except HairsegError as exc:
            raise InvalidInput(f"{where}.color: {exc}") from None
    intensity = raw.get("intensity")
    if intensity is not None:
        if isinstance(intensity, bool) or not isinstance(intensity, int | float):
            raise InvalidInput(f"{where}.intensity must be a number in [0, 1], got {intensity!r}")
        if not (math.isfinite(intensity) and 0.0 <= intensity <= 1.0):
            raise InvalidInput(f"{where}.intensity must be between 0 and 1, got {intensity!r}")
        opts.intensity = float(intensity)
    for key, choices in (
        ("output", OUTPUT_CHOICES),
        ("tryon_format", TRYON_FORMATS),
        ("tier", TIER_CHOICES),
    ):
        value = raw.get(key)
        if value is None:
            continue
        if value not in choices:
            raise InvalidInput(
                f"{where}.{key} {value!r} is not accepted; use one of {', '.join(choices)}"
            )
        setattr(opts, key, value)
    customer_id = raw.get("customer_id")
    if customer_id is not None:
        if not isinstance(customer_id, str) or not 0 < len(customer_id) <= _MAX_CUSTOMER_ID:
            raise InvalidInput(
                f"{where}.customer_id must be a string of 1-{_MAX_CUSTOMER_ID} characters"
            )
        opts.customer_id = customer_id
    return opts


def b64decode_image(text: Any, where: str) -> bytes:
    """Strict base64 (standard alphabet, padding checked) to bytes."""
    if not isinstance(text, str | bytes):
        raise InvalidInput(f"{where} must be a base64 string, got {type(text).__name__}")
    if isinstance(text, str) and text.startswith("data:") and ";base64," in text[:100]:
        text = text.split(",", 1)[1]  # a data URL from a browser
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{where} is not valid base64: {exc}") from None
    if not data:
        raise InvalidInput(f"{where} is empty (0 bytes after base64 decoding)")
    return data


def parse_v1(body: Any, *, max_instances: int) -> list[ImageJob]:
    """``{"instances": [...]}`` to image jobs (bytes not yet decoded)."""
    if isinstance(body, bytes | bytearray | str):
        # KServe hands over the raw body when Content-Type is not JSON (curl -d sends
        # x-www-form-urlencoded): accept JSON whatever the declared type.
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                f'V1 expects a JSON body {{"instances": [...]}}; the body is not valid JSON: {exc}'
            ) from None
    if not isinstance(body, Mapping):
        raise InvalidInput(
            f'body must be a JSON object {{"instances": [...]}}, got {type(body).__name__}'
        )
    if "instances" not in body:
        raise InvalidInput(f'body has no "instances" list (keys: {sorted(body)[:10]})')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InvalidInput('"instances" must be a list')
    if not instances:
        raise InvalidInput(f'"instances" is empty; send 1 to {max_instances} images')
    if len(instances) > max_instances:
        raise InvalidInput(
            f"too many instances: {len(instances)}; the limit is {max_instances} per request"
        )
    jobs = []
    for i, inst in enumerate(instances):
        where = f"instances[{i}]"
        if not isinstance(inst, Mapping):
            raise InvalidInput(
                f"{where} must be an object with image_b64, got {type(inst).__name__}"
            )
        if "image_b64" not in inst:
            raise InvalidInput(f"{where} has no image_b64 (base64 of a JPEG/PNG/WebP/BMP image)")
        options = parse_options(inst, where, allow=V1_FIELDS)
        jobs.append(
            ImageJob(b64decode_image(inst["image_b64"], f"{where}.image_b64"), options, where)
        )
    return jobs


def merge_options(base: Options, override: Options) -> Options:
    """``override``'s given fields over ``base``."""
    return Options(
        **{
            k: getattr(override, k) if getattr(override, k) is not None else getattr(base, k)
            for k in OPTION_KEYS
        }
    )
