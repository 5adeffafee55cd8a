"""Command line: ``fashionviewer [FOLDER]`` opens the viewer; ``predict`` and ``evaluate`` run headless.

Exit status: 0 success, 2 a user error (printed as one ``error:`` line), 3 done
with skipped files (``predict``), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from fashionviewer.cli import EXIT_USER_ERROR, run_command
from fashionviewer.core.base.errors import FashionViewerError

USAGE = """usage: fashionviewer [FOLDER]              open the viewer (the bundled demo when FOLDER is omitted)
       fashionviewer predict FOLDER --out DIR  predict a folder headless (see: fashionviewer predict -h)
       fashionviewer predict --merge DIR       join the results of `predict --shard I/N` runs
       fashionviewer evaluate --gt GT --pred RESULTS   COCO AP of predictions (see: fashionviewer evaluate -h)
       fashionviewer annotations export|import ...     other tools' formats (see: fashionviewer annotations -h)"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    return run_command(lambda _: _dispatch(command, args), args)


def _dispatch(command: str, args: list[str]) -> int:
    if command == "predict":
        from fashionviewer.predict import main as predict

        return int(predict(args[1:]) or 0)
    if command == "evaluate":
        from fashionviewer.evaluate import main as evaluate

        return int(evaluate(args[1:]) or 0)
    if command == "annotations":
        from fashionviewer.annotations_cli import main as annotations

        return int(annotations(args[1:]) or 0)
    # not a folder of that name: the command people try
    if command == "export" and not os.path.exists(command):
        raise FashionViewerError(
            "no 'export' command: use fashionviewer annotations export FOLDER --to FORMAT "
            "--out DIR (annotations) or fashionviewer predict FOLDER --out DIR --export png,coco"
        )
    if not _has_display():
        return _headless(args)
    from fashionviewer.platform_check import xcb_platform_problem

    problem = xcb_platform_problem()  # checked before Qt, which would abort with its own advice
    if problem:
        return _headless(args, problem)
    from fashionviewer.qt.app import main as gui

    return int(gui(args) or 0)


def _has_display() -> bool:
    """False on a Linux machine with no X/Wayland display and no Qt platform chosen."""
    import os

    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _headless(args: list[str], problem: str = "") -> int:
    """No display (or one Qt cannot open: ``problem``): run the viewer's main job on the bundled demo headless."""
    if args:
        raise FashionViewerError(
            f"{problem or 'no display found to open the viewer'}; "
            "for a headless run use: fashionviewer predict FOLDER --out DIR"
        )
    from platformdirs import user_cache_dir

    from fashionviewer.core.base.paths import DEMO_DIR
    from fashionviewer.predict import main as predict

    out = f"{user_cache_dir('fashionviewer')}/demo-output"
    if problem:
        print(
            f"error: {problem}; predicting the bundled demo headless into {out} instead",
            file=sys.stderr,
        )
    else:
        print(
            f"no display found: predicting the bundled demo ({DEMO_DIR}) headless into {out}",
            file=sys.stderr,
        )
    # The viewer opens at a 0.5 score threshold; the headless demo exports the same view.
    status = int(
        predict(
            [
                str(DEMO_DIR),
                "--out",
                out,
                "--model",
                "demo",
                "--min-score",
                "0.5",
                "--export",
                "png,coco",
            ]
        )
        or 0
    )
    return status or (EXIT_USER_ERROR if problem else 0)  # the viewer asked for did not open


if __name__ == "__main__":
    sys.exit(main())
