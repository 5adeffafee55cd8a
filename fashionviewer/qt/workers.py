"""Background work, superqt-style: a QRunnable runs a generator, signals carry its results.

``start_worker(fn, *args)`` runs generator function ``fn`` on the global thread pool. Every value it
yields arrives on the GUI thread through ``signals.yielded``; ``worker.cancel()`` is cooperative:
it is checked between yields (so a generator should yield between units of work), and the
generator gets ``GeneratorExit`` so ``finally`` blocks run.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable, Generator

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class WorkerSignals(QObject):
    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # the exception
    finished = Signal()  # always last, after returned/errored, also after a cancel


class GeneratorWorker(QRunnable):
    def __init__(
        self, fn: Callable[..., Generator[Any, None, Any]], *args: Any, **kwargs: Any
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it; it must outlive run() for the signals
        self.signals = WorkerSignals()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._cancel = threading.Event()
        self.done = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        self.signals.started.emit()
        try:
            gen = self._fn(*self._args, **self._kwargs)
            result = None
            try:
                while not self._cancel.is_set():
                    value = next(gen)
                    if self._cancel.is_set():
                        break
                    self.signals.yielded.emit(value)
            except StopIteration as stop:
                result = stop.value
            finally:
                gen.close()
            if not self._cancel.is_set():
                self.signals.returned.emit(result)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI, never lost in a thread
            exc.traceback_text = traceback.format_exc()  # type: ignore[attr-defined]
            try:
                self.signals.errored.emit(exc)
            except RuntimeError:  # the application is gone (see below)
                pass
        finally:
            self.done.set()
            try:
                self.signals.finished.emit()
            except RuntimeError:  # the application is gone: a worker that outlived it at exit
                pass


_live: set[GeneratorWorker] = set()  # keep workers alive until they finish


def start_worker(
    fn: Callable[..., Generator[Any, None, Any]],
    *args: Any,
    on_yield: Callable[[Any], None] | None = None,
    on_return: Callable[[Any], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    on_finish: Callable[[], None] | None = None,
    **kwargs: Any,
) -> GeneratorWorker:
    worker = GeneratorWorker(fn, *args, **kwargs)
    if on_yield:
        worker.signals.yielded.connect(on_yield)
    if on_return:
        worker.signals.returned.connect(on_return)
    if on_error:
        worker.signals.errored.connect(on_error)
    if on_finish:
        worker.signals.finished.connect(on_finish)
    _live.add(worker)
    worker.signals.finished.connect(lambda: _live.discard(worker))
    QThreadPool.globalInstance().start(worker)
    return worker


def wait_all(timeout_s: float = 10.0) -> bool:
    """Cancel every running worker and wait for them (used when the window closes)."""
    for worker in list(_live):
        worker.cancel()
    return QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000))
