"""What both trainers share: device choice, cooperative cancel, and the CLI wrapper."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.inference import devices

from . import distributed


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


def add_run_arguments(
    p: argparse.ArgumentParser, *, out: str, device: str, threads: int, state_file: str
) -> None:
    """The options every resumable trainer shares: device, threads, resume, out, events, seed."""
    p.add_argument("--device", default=device, help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument(
        "--threads",
        type=int,
        default=threads,
        help="torch CPU threads per process (0: torch's default)",
    )
    p.add_argument(
        "--resume",
        default=None,
        help=f"a {state_file} to continue from, or 'auto' (OUT/{state_file} when present)",
    )
    p.add_argument("--out", default=out, help="output folder (checked writable before training)")
    p.add_argument(
        "--events", default=None, help="JSON-lines progress events to PATH, or '-' for stdout"
    )
    p.add_argument("--seed", type=int, default=0)


def add_export_arguments(
    p: argparse.ArgumentParser, *, name: str, name_help: str
) -> argparse._ArgumentGroup:
    """``--export CHECKPOINT`` and ``--name``: turn a trained model.pt into a shipped NAME.pt + card."""
    g = p.add_argument_group("export a trained checkpoint for shipping (no training)")
    g.add_argument(
        "--export",
        metavar="CHECKPOINT",
        help="a trained model.pt to export to --out/NAME.pt (+ card)",
    )
    g.add_argument("--name", default=name, help=name_help)
    return g


def agreed_loss(loss: torch.Tensor, stop_requested: bool) -> float:
    """The step's loss averaged over the ranks; raises :class:`Cancelled` on every rank as soon as
    any rank was asked to stop (a rank stopping alone would leave the others waiting in the
    gradient all-reduce)."""
    asked = torch.tensor(float(stop_requested), device=loss.device)
    agreed = distributed.reduce_mean({"loss": loss.detach(), "stop": asked})
    if float(agreed["stop"]) > 0:
        raise Cancelled()
    return float(agreed["loss"])


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step factor: linear warm-up over ``warmup_steps`` (at most a quarter of training), then
    cosine to 0 at ``total_steps``."""
    total = max(1, total_steps)
    warmup = max(1, min(warmup_steps, total // 4))

    def factor(step: int) -> float:
        return (
            min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the error into one usage line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def fraction(text: str) -> float:
    """argparse type: a number from 0 to 1 (argparse turns the error into one usage line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is not between 0 and 1")
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
