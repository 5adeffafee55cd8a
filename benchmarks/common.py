"""What the benchmark scripts share."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fashionviewer.core.paths import ccp_dir  # noqa: E402


def ccp_root_or_report() -> Path | None:
    """The Clothing Co-Parsing folder, or None after printing the one-line reason it is needed."""
    root = ccp_dir()
    if root is None:
        print("error: this benchmark needs the Clothing Co-Parsing photos (../shared/data/ccp)", file=sys.stderr)
    return root
