"""The container image every component runs in: the project image, tagged with the version.

The root ``Dockerfile`` builds it (``uv pip sync requirements.lock`` + ``pip install --no-deps
.``), so the image holds the core, these components and every pinned dependency; components
therefore install nothing at start (``install_kfp_package=False``, ``packages_to_install=[]``).
The registry is chosen at compile time (``hairseg pipeline compile --registry``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hairseg import __version__

__all__ = ["BASE_IMAGE", "DEFAULT_REGISTRY", "component", "image_ref"]

DEFAULT_REGISTRY = "ghcr.io/hairseg/hairseg"

# registry host[:port]/path, lower case, as OCI references allow (no tag, no digest)
_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


def image_ref(registry: str = DEFAULT_REGISTRY, version: str = __version__) -> str:
    """``{registry}:{version}``; the tag is the package version (``+`` is not legal in a tag)."""
    from hairseg.errors import EXIT_USAGE, HairsegError

    registry = registry.strip().rstrip("/")
    if not _REPOSITORY.match(registry):
        raise HairsegError(
            f"image registry {registry!r} is not an image repository such as "
            f"'{DEFAULT_REGISTRY}' (lower case, no tag)",
            exit_code=EXIT_USAGE,
        )
    return f"{registry}:{version.replace('+', '-')}"


BASE_IMAGE = image_ref()


def component(func: Callable[..., Any]) -> Any:
    """``@dsl.component`` in :data:`BASE_IMAGE`, installing nothing at start: the one place
    every hairseg component's image and packaging are set."""
    from kfp import dsl

    return dsl.component(
        func, base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[]
    )
