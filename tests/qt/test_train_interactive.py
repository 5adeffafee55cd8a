"""Train ▸ Interactive segmentation…: the dialog's declared rows start ``python -m trainers.interactive`` as a
QProcess (a tiny real run on CCP photos), the panel plots its validation IoUs live, says where model.pt was
written, and only when the user chooses it do the box and click tools segment with the new network."""

from __future__ import annotations

from pathlib import Path

from fashionviewer.core.inference import interactive_model
from fashionviewer.core.inference.interactive import METHOD_LEARNED
from fashionviewer.core.viewer.training import TrainingRequest
from fashionviewer.qt.annotation.drawing import _method_line
from fashionviewer.qt.dialogs.training import TrainingDialog

METRICS = ("val box iou", "val box 2clicks iou", "val click iou")


def test_train_the_interactive_network_from_the_menu_and_choose_it_for_the_box_tool(
    qtbot, window, tmp_path: Path, ccp_root: Path, monkeypatch
) -> None:
    out = tmp_path / "run"

    def fill(dialog: TrainingDialog) -> int:
        assert dialog.trainer == "interactive"
        assert list(dialog.fields) == [
            "model",
            "epochs",
            "data_path",
            "limit",
            "batch_size",
            "device",
            "threads",
            "resume",
            "out",
        ]
        dialog.epochs.setValue(1)
        dialog.limit.setValue(2)  # steps per epoch
        dialog.batch_size.setValue(2)
        dialog.data_path.setText(str(ccp_root))
        dialog.out.setText(str(out))
        dialog._accept()
        return dialog.result()

    monkeypatch.setattr(TrainingDialog, "exec", fill)
    # a few training photos and validation objects: a quick real run
    monkeypatch.setattr(
        TrainingRequest,
        "arguments",
        lambda self, orig=TrainingRequest.arguments: (
            orig(self)[:-2]
            + ["--limit", "4", "--val-objects", "4", "--max-iterations", "1", "--events", "-"]
        ),
    )
    panel = window.training
    with qtbot.waitSignal(panel.finished, timeout=300_000) as finished:
        window.train_interactive_action.trigger()
    assert finished.args == ["completed"], panel.message.text() + panel.log.toPlainText()[-2000:]
    log = panel.log.toPlainText()
    assert "-m trainers.interactive" in log and "--steps-per-epoch 2" in log
    assert "--threads 1" in log and "--resume" not in log  # "no": the flag is left out
    # the validation IoUs are curves of the metric plot, one point for the one epoch
    curves = panel.progress.curves()
    assert all(len(curves[name]) == 1 and 0.0 <= curves[name][0][1] <= 1.0 for name in METRICS)
    plotted = panel.metric_plot.getPlotItem().listDataItems()
    assert set(METRICS) <= {item.name() for item in plotted}
    assert "val box IoU" in panel.progress.summary()
    checkpoint = out / "model.pt"
    assert panel.progress.checkpoint == str(checkpoint) and checkpoint.is_file()
    assert str(checkpoint) in panel.message.text() and "bundled model" in panel.message.text()
    # not a detector: no "load the new weights", the box tool's own choice instead
    assert not panel.load_button.isVisibleTo(window) and panel.use_button.isVisibleTo(window)
    bundled = interactive_model.bundled_model_path()
    assert interactive_model.model_in_use_path() == bundled  # nothing changes unless chosen
    try:
        panel.use_button.click()
        assert interactive_model.model_in_use_path() == checkpoint
        assert "now use" in panel.message.text() and not panel.use_button.isVisibleTo(window)
        assert str(checkpoint) in _method_line(METHOD_LEARNED)  # the status bar names it
    finally:
        interactive_model.use_model(None)
    assert interactive_model.model_in_use_path() == bundled


def test_cancelling_an_interactive_run_stops_it_at_the_next_step(
    qtbot, window, tmp_path: Path, ccp_root: Path
) -> None:
    request = TrainingRequest(
        "interactive",
        "interactive_unet",
        str(tmp_path / "run"),
        epochs=3,
        data_path=str(ccp_root),
        limit_train=500,
        batch_size=2,
        extra=["--limit", "4", "--val-objects", "0"],
    )
    panel = window.training
    window.train("interactive", request)
    qtbot.waitUntil(lambda: panel.progress.step >= 1, timeout=120_000)  # live step events arrive
    assert panel.progress.steps_per_epoch == 500 and panel.progress.fraction > 0
    with qtbot.waitSignal(panel.finished, timeout=60_000) as finished:
        panel.cancel()
    assert finished.args == ["cancelled"], panel.message.text()
    assert panel.progress.status == "cancelled" and panel.progress.epoch == 1
    assert panel.message.text().startswith("Training cancelled")
    # the trainer stopped itself on SIGTERM (not the 10 s kill)
    assert "cancelled: the last completed epoch's checkpoint is kept" in panel.log.toPlainText()
    assert not panel.use_button.isVisible() and not panel.load_button.isVisible()


def test_the_dialog_refuses_a_missing_ccp_folder_and_resumes_on_request(
    qtbot, tmp_path: Path
) -> None:
    dialog = TrainingDialog("interactive", ["cpu"], "cpu", str(tmp_path / "out"))
    qtbot.addWidget(dialog)
    dialog.data_path.setText(str(tmp_path / "no-ccp-here"))
    dialog._accept()
    assert dialog.result() != TrainingDialog.DialogCode.Accepted
    assert "no-ccp-here: no such folder" in dialog.problem.text()
    dialog.data_path.clear()  # the default location
    dialog.resume.setCurrentText("auto")
    args = dialog.request().arguments()
    assert args[args.index("--resume") + 1] == "auto" and "--data-path" not in args
