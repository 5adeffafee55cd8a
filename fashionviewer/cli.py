"""What every command-line entry point shares: user errors as one ``error:`` line, Ctrl+C as exit 130.

``fashionviewer.__main__`` (dispatch), ``fashionviewer.predict`` and ``fashionviewer.evaluate`` all
run their ``main`` through :func:`run_command`, so none of them imports another to get this behaviour.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from fashionviewer.core.base.errors import FashionViewerError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_command(main: Callable[[list[str]], int | None], argv: Sequence[str]) -> int:
    """Call ``main(argv)``; a :class:`FashionViewerError` is printed as one line (exit 2), Ctrl+C exits 130."""
    try:
        return int(main(list(argv)) or 0)
    except FashionViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
