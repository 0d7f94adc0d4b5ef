"""hairseg: the pure, typed core of the hair-segmentation MLOps project.

The core never imports ``kfp`` or ``kserve``: DVC stages (via the ``hairseg`` CLI), KFP
components and the KServe predictor all call the same functions from here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hairseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
