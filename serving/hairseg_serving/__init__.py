"""KServe predictor for hairseg: hair masks and hair-colour try-on over V1 and V2.

The package is a thin door onto the core (:mod:`hairseg.imaging`, :mod:`hairseg.tryon`,
:mod:`hairseg.inference`): it parses requests, calls the core and formats responses. It is
started by ``python -m hairseg_serving`` (the container) or ``hairseg serve`` (locally).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeConfig", "load_serve_config"]


def __getattr__(name: str) -> Any:
    # Lazy: ``hairseg --help`` loads hairseg_serving.cli, which must not pay for the core's
    # imaging stack that settings imports.
    if name in __all__:
        from hairseg_serving import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'hairseg_serving' has no attribute {name!r}")
