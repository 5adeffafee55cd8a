"""Training panel: runs a trainer as a QProcess (events on its stdout), shows progress, ETA and curves,
cancels with SIGTERM (the trainer stops at the next step; the last checkpoint stays valid), and when
the run completes offers to load the new weights (the interactive segmentation network: to use it for the
box and click tools instead of the bundled one, for the rest of the session)."""

from __future__ import annotations

import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fashionviewer.core.base.errors import WeightsError
from fashionviewer.core.base.events import parse_event_line
from fashionviewer.core.base.paths import REPO_DIR
from fashionviewer.core.viewer.training import (
    TRAINERS,
    TrainingProgress,
    TrainingRequest,
    explain_failure,
    format_eta,
)

_PENS = {
    "step loss": (120, 120, 200),
    "train loss": (70, 130, 230),
    "val loss": (230, 130, 40),
    "train acc": (60, 180, 90),
    "val acc": (200, 60, 160),
    "bbox ap": (200, 200, 60),
    "segm ap": (60, 200, 200),
    "val box iou": (230, 90, 60),
    "val box 2clicks iou": (150, 90, 220),
    "val click iou": (90, 200, 130),
}
# the trainer whose model the box and click tools use (``core.inference.interactive_model.use_model``)
INTERACTIVE_TRAINER = "interactive"


class TrainingPanel(QWidget):
    load_requested = Signal(object)  # (TrainingRequest, checkpoint path)
    finished = Signal(str)  # final status
    tool_model_chosen = Signal(str)  # a trained interactive model the box and click tools now use

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.request: TrainingRequest | None = None
        self.progress = TrainingProgress()
        self._stdout_buffer = ""
        self._stderr_tail = ""
        self.title = QLabel("No training running.")
        self.bar = QProgressBar(maximum=1000, textVisible=False)
        self.eta = QLabel("")
        self.cancel_button = QPushButton("Cancel training", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)
        self.load_button = QPushButton("Load the new weights and re-run the folder")
        self.load_button.hide()
        self.load_button.clicked.connect(self._load_clicked)
        self.use_button = QPushButton("Use the new model for the box and click tools")
        self.use_button.hide()
        self.use_button.clicked.connect(self._use_clicked)
        self.message = QLabel(wordWrap=True, objectName="trainingMessage")
        self.loss_plot = pg.PlotWidget(title="loss")
        self.metric_plot = pg.PlotWidget(title="accuracy / AP / IoU")
        for plot in (self.loss_plot, self.metric_plot):
            plot.addLegend(offset=(5, 5))
            plot.setLabel("bottom", "epoch")
            plot.setMinimumHeight(140)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.log = QPlainTextEdit(readOnly=True, maximumBlockCount=400)
        self.log.setMaximumHeight(90)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.eta)
        top.addWidget(self.cancel_button)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.metric_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        layout.addWidget(self.load_button)
        layout.addWidget(self.use_button)
        layout.addLayout(plots, 1)
        layout.addWidget(self.log)
        self._plot_timer = QTimer(self, singleShot=True, interval=250)  # redraw curves at most 4×/s
        self._plot_timer.timeout.connect(self._update_plots)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, request: TrainingRequest) -> None:
        if self.running:
            raise RuntimeError("a training run is already going")
        self.request, self.progress = request, TrainingProgress()
        self._stdout_buffer, self._stderr_tail = "", ""
        for curve in self._curves.values():
            curve.setData([], [])
        self.log.clear()
        self.message.setText("")
        self.load_button.hide()
        self.use_button.hide()
        self.bar.setValue(0)
        self.eta.setText("")
        self.title.setText(f"Training {TRAINERS[request.trainer]} {request.model} → {request.out}")
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # The trainers are run from the source tree: make `-m trainers.X` importable from anywhere.
        env.insert(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_DIR), env.value("PYTHONPATH")]))
        )
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        process.setWorkingDirectory(str(REPO_DIR))
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        self.process = process
        command = request.command()
        self.log.appendPlainText("$ " + " ".join(command))
        process.start(command[0], command[1:])
        self.cancel_button.setEnabled(True)

    def cancel(self) -> None:
        """SIGTERM: the trainer finishes its step, reports "cancelled" and keeps the last checkpoint."""
        if self.running:
            self.message.setText("Cancelling… (the trainer stops after the current step)")
            self.process.terminate()  # type: ignore[union-attr]
            # A trainer stuck in data loading gets a hard kill after 10 s.
            # dropped if the process object is gone
            QTimer.singleShot(10_000, self.process, self.process.kill)

    # ----- process output --------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._stdout_buffer += bytes(self.process.readAllStandardOutput()).decode(
            "utf-8", "replace"
        )  # type: ignore[union-attr]
        *lines, self._stdout_buffer = self._stdout_buffer.split("\n")
        for line in lines:
            event = parse_event_line(line)
            if event is None:
                if line.strip():
                    self.log.appendPlainText(line)
                continue
            self.progress.feed(event)
            if event["event"] in ("epoch", "test", "end"):
                self.log.appendPlainText(f"{event['event']}: {self.progress.summary()}")
        self._show_progress()

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")  # type: ignore[union-attr]
        self._stderr_tail = (self._stderr_tail + text)[-4000:]
        for line in text.replace("\r", "\n").splitlines():
            if line.strip() and "%|" not in line:  # skip tqdm's bar redraws, keep log lines
                self.log.appendPlainText(line.rstrip())

    def _show_progress(self) -> None:
        p = self.progress
        self.bar.setValue(int(p.fraction * 1000))
        self.eta.setText(format_eta(p.eta_seconds()) if p.status == "running" else "")
        self.title.setText(f"{TRAINERS[self.request.trainer]} {self.request.model}: {p.summary()}")  # type: ignore[union-attr]
        if not self._plot_timer.isActive():
            self._plot_timer.start()

    def _update_plots(self) -> None:
        for name, points in self.progress.curves().items():
            curve = self._curves.get(name)
            if curve is None:
                plot = self.loss_plot if "loss" in name else self.metric_plot
                curve = plot.plot(
                    [],
                    [],
                    name=name,
                    pen=pg.mkPen(_PENS.get(name, (200, 200, 200)), width=2),
                    symbol=None if name == "step loss" else "o",
                    symbolSize=5,
                )
                self._curves[name] = curve
            curve.setData([x for x, _ in points], [y for _, y in points])

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.message.setText(
                "Training could not start: the Python interpreter or the trainer was not found."
            )
            self._done("failed")

    def _finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        p = self.progress
        # no "end" event: killed, or crashed before reporting
        if p.status in ("running", "starting"):
            p.status = "cancelled" if self.message.text().startswith("Cancelling") else "failed"
        if p.status == "completed":
            self.bar.setValue(1000)
            self.message.setText(f"Training finished: {p.summary()}. Weights: {p.checkpoint}")
            written = bool(p.checkpoint) and Path(p.checkpoint).is_file()
            if self.request is not None and self.request.trainer == INTERACTIVE_TRAINER:
                best = Path(p.checkpoint or "").with_name("model_best.pt")
                self.message.setText(
                    f"Training finished: {p.summary()}. Model written to {p.checkpoint}"
                    + (f" (best validation score: {best})" if best.is_file() else "")
                    + ". The box and click tools keep the bundled model unless you choose this one."
                )
                self.use_button.setVisible(written)
            elif written:
                self.load_button.show()
        elif p.status == "cancelled":
            kept = (
                f" The last checkpoint is kept: {p.checkpoint}"
                if p.checkpoint
                else " No epoch had finished, so no checkpoint was written."
            )
            self.message.setText("Training cancelled." + kept)
        else:
            self.message.setText(explain_failure(exit_code, p, self._stderr_tail))
        self._done(p.status)

    def _done(self, status: str) -> None:
        self._update_plots()
        self.cancel_button.setEnabled(False)
        self.eta.setText("")
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self.finished.emit(status)

    def _load_clicked(self) -> None:
        if self.request is not None and self.progress.checkpoint:
            self.load_button.hide()
            self.load_requested.emit((self.request, self.progress.checkpoint))

    def _use_clicked(self) -> None:
        """The box and click tools segment with the new network from now on (remembered by the window)."""
        from fashionviewer.core.inference.interactive_model import use_model

        checkpoint = self.progress.checkpoint
        if not checkpoint:
            return
        try:
            path = use_model(checkpoint)
        except WeightsError as exc:
            self.message.setText(f"The new model cannot be used: {exc}")
            return
        self.use_button.hide()
        self.message.setText(
            f"The box and click tools now use {path} (also after a restart; Train ▸ Use the Bundled "
            "Box/Click Model goes back)."
        )
        self.tool_model_chosen.emit(str(path))
