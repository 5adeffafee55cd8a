"""What both trainers share: device choice, cooperative cancel, and the CLI wrapper."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.inference import devices


class Cancelled(Exception):
    """Training was stopped (SIGTERM/SIGINT); the last epoch's checkpoint is intact."""


@contextmanager
def end_event(events: Any, last_path: Path) -> Iterator[None]:
    """The run's closing ``end`` event: completed, cancelled or failed (with the message and the last
    checkpoint when one was written); errors are re-raised for ``run_cli``."""
    written = lambda: str(last_path) if last_path.exists() else None  # noqa: E731 - read at the end
    try:
        yield
    except Cancelled:
        events.emit("end", status="cancelled", checkpoint=written())
        raise
    except FashionViewerError as exc:
        events.emit("end", status="failed", checkpoint=written(), message=str(exc))
        raise
    events.emit("end", status="completed", checkpoint=str(last_path))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the error into one usage line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def resolve_device(name: str) -> torch.device:
    """``--device`` value → a usable device, or a one-line error naming the flag."""
    try:
        return devices.resolve_device(name)
    except FashionViewerError as exc:
        raise FashionViewerError(f"--device {name}: {str(exc).split(': ', 1)[-1]}") from exc


def install_cancel_handler() -> dict[str, bool]:
    """SIGTERM (the GUI's cancel) stops at the next step; the last checkpoint stays valid."""
    flag = {"requested": False}

    def handler(signum: int, frame: object) -> None:
        flag["requested"] = True

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread (e.g. a test worker thread)
        pass
    return flag


def run_cli(
    main: Callable[[argparse.Namespace], Any],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    cleanup: Callable[[], None] | None = None,
) -> int:
    """Parse, run, and turn user errors and cancels into one line and an exit status (2, 130)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser.parse_args(argv)
    try:
        main(args)
    except FashionViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("cancelled: the last completed epoch's checkpoint is kept", file=sys.stderr)
        return 130
    finally:
        if cleanup is not None:
            cleanup()
    return 0
