"""KFP v2 components for hairseg: one thin typed wrapper per pipeline stage.

Each component's body imports the core (``hairseg``) and calls the same function its
``hairseg <command>`` / DVC stage calls, then records metadata on its typed artifacts.
The core never imports ``kfp``; only this package and ``hairseg_pipelines`` do.
"""

from __future__ import annotations

from hairseg_components.image import BASE_IMAGE, DEFAULT_REGISTRY, image_ref

__all__ = ["BASE_IMAGE", "DEFAULT_REGISTRY", "image_ref"]
