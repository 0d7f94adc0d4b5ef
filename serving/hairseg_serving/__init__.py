"""KServe predictor for hairseg: hair masks and hair-colour try-on over V1 and V2.

The package is a thin door onto the core (:mod:`hairseg.imaging`, :mod:`hairseg.tryon`,
:mod:`hairseg.inference`): it parses requests, calls the core and formats responses. It is
started by ``python -m hairseg_serving`` (the container) or ``hairseg serve`` (locally).
"""

from __future__ import annotations

from hairseg_serving.settings import ServeConfig, load_serve_config

__all__ = ["ServeConfig", "load_serve_config"]
