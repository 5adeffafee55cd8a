"""Machine-readable training progress: one JSON object per line.

Both trainers (``trainers.fmnist`` and ``trainers.maskrcnn``) emit the same
events, which the GUI reads from the trainer's stdout. Every event has
``event`` (its kind) and ``time`` (Unix seconds). Kinds and their fields:

``start``   trainer, model, epochs, steps_per_epoch, device, out
``step``    epoch (1-based), step (1-based within the epoch), steps, loss, lr
``epoch``   epoch, epochs, train_loss, train_acc*, val_loss*, val_acc*,
            bbox_ap*, segm_ap*, seconds, checkpoint (path written this epoch)
``test``    metrics (dict: accuracy, micro_f1, macro_f1, confusion, ... )
``end``     status ("completed" | "cancelled" | "failed"), checkpoint, message*

Fields marked * appear when the trainer measures them. Unknown fields must be
ignored by readers so trainers can add more later.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any


class EventWriter:
    """Write JSON-lines events to a file, to stdout (``"-"``), or nowhere (``None``)."""

    def __init__(self, target: str | Path | None = None) -> None:
        self._owned = False
        self._stream: IO[str] | None
        if target is None:
            self._stream = None
        elif str(target) == "-":
            self._stream = sys.stdout
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(target, "a", encoding="utf-8")
            self._owned = True

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        if self._stream is not None:
            self._stream.write(json.dumps(record, default=_jsonable) + "\n")
            self._stream.flush()
        return record

    def close(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()
        self._stream = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_event_line(line: str) -> dict[str, Any] | None:
    """Parse one line of trainer output; ``None`` for anything that is not an event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "event" in record else None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
