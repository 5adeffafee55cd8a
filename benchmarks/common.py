"""What the benchmark scripts share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fashionviewer.core.base.errors import FashionViewerError  # noqa: E402
from fashionviewer.core.base.paths import ccp_dir  # noqa: E402


def ccp_root_or_report() -> Path | None:
    """The Clothing Co-Parsing folder, or None after printing the one-line reason it is needed."""
    root = ccp_dir()
    if root is None:
        print(
            "error: this benchmark needs the Clothing Co-Parsing photos (../shared/data/ccp)",
            file=sys.stderr,
        )
    return root


def parse_ccp_benchmark(
    parser: argparse.ArgumentParser, argv: list[str] | None, default_threads: int
) -> tuple[argparse.Namespace, Path] | None:
    """Add ``--threads`` and ``--results``, parse, find the CCP photos and set the thread count.

    Returns (args, CCP folder), or None after reporting that the photos are missing."""
    parser.add_argument("--threads", type=int, default=default_threads, help="torch CPU threads")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    root = ccp_root_or_report()
    if root is None:
        return None
    torch.set_num_threads(args.threads)
    return args, root


def run_benchmark(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; a bad argument or input file is one ``error:`` line and status 2."""
    try:
        status = main()
    except FashionViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    sys.exit(status)
