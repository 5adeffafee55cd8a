"""Command line: ``fashionviewer [FOLDER]`` opens the viewer; ``predict`` and ``evaluate`` run headless.

Exit status: 0 success, 2 a user error (printed as one ``error:`` line), 3 done
with skipped files (``predict``), 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .core.errors import FashionViewerError

USAGE = """usage: fashionviewer [FOLDER]              open the viewer (the bundled demo when FOLDER is omitted)
       fashionviewer predict FOLDER --out DIR  predict a folder headless (see: fashionviewer predict -h)
       fashionviewer evaluate --gt GT --pred RESULTS   COCO AP of predictions (see: fashionviewer evaluate -h)"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    try:
        if command == "predict":
            from .predict import main as run
        elif command == "evaluate":
            from .evaluate import main as run
        elif command in ("-h", "--help"):
            print(USAGE)
            return 0
        else:
            from .qt.app import main as gui

            return int(gui(args) or 0)
        return int(run(args[1:]) or 0)
    except FashionViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
