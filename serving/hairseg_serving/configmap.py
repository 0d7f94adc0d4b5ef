"""The serving ConfigMap (``serving/manifests/base/configmap.yaml``), generated from params.yaml.

The ConfigMap's ``params.yaml`` is params.yaml's own ``serve:`` section, copied verbatim
(comments included): one source for the predictor's settings. What only the cluster sets
(the bind address, the Feast repo and log folder inside the pod) is a flag in the
ServingRuntime's ``args``, next to the volume mounts those paths name.

    python -m hairseg_serving.configmap          # rewrite the ConfigMap from params.yaml
    python -m hairseg_serving.configmap --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["CONFIGMAP", "render", "section_text"]

REPO = Path(__file__).resolve().parents[2]
CONFIGMAP = Path("serving/manifests/base/configmap.yaml")

HEADER = """\
# Generated from the serve: section of params.yaml by `python -m hairseg_serving.configmap`:
# edit params.yaml, then rerun it (tests/unit/test_manifests_serving.py checks it is current).
# Mounted at /etc/hairseg/params.yaml; the ServingRuntime's args set what differs on the
# cluster (--host, --feature_repo, --inference_log_dir).
apiVersion: v1
kind: ConfigMap
metadata:
  name: hairseg-serve-params
  labels:
    app.kubernetes.io/name: hairseg
    app.kubernetes.io/component: predictor
    app.kubernetes.io/part-of: hairseg
data:
  params.yaml: |
"""


def section_text(params_text: str, name: str) -> str:
    """The lines of top-level section ``name`` (its key line and every indented line after)."""
    match = re.search(rf"^{re.escape(name)}:.*\n(?:(?:[ \t].*)?\n)*", params_text, re.M)
    if match is None:
        raise ValueError(f"params.yaml has no top-level {name}: section")
    return match.group(0).rstrip("\n") + "\n"


def render(params_text: str) -> str:
    """The ConfigMap for a params.yaml text."""
    body = "".join(
        f"    {line}" if line.strip() else "\n"
        for line in section_text(params_text, "serve").splitlines(True)
    )
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hairseg_serving.configmap", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--root", type=Path, default=REPO, help="project root [this checkout]")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    target = args.root / CONFIGMAP
    text = render((args.root / "params.yaml").read_text())
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(
                f"{target} is out of date: run python -m hairseg_serving.configmap", file=sys.stderr
            )
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
