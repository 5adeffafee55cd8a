"""Reproduce the paper's Fashion-MNIST table side by side with this machine's figures.

    python benchmarks/fmnist_paper.py [--models cnn1 cnn2 cnn3] [--work DIR] [--report-only]

Two kinds of rows:

* **the paper's protocol**, run as the paper ran it: 48,000 train / 12,000 validation / 10,000 test,
  plain Adam (lr 1e-3, constant), no augmentation, 50 epochs, its three CNNs. Each run is
  ``trainers.fmnist --recipe paper`` in ``--work`` and is resumable (a checkpoint every epoch): running this
  script again continues unfinished runs. ``--report-only`` trains nothing and reports what the work folder
  holds (an unfinished run is listed with the epochs it reached and no test figure).
* **the shipped classifiers** (``resources/models/*.json``): each card's recipe, epochs, seconds and its test
  figures, measured by ``trainers.fmnist.evaluate`` + ``core.data.metrics`` on the 10,000 test images.

Writes ``benchmarks/results/fmnist_paper.md`` and the paper's Fig. 3/4: train/validation accuracy and loss
per epoch of the paper-protocol runs over the first 10 epochs (``fmnist_curves_10.png``) and over 50
(``fmnist_curves_50.png``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fashionviewer.core.base.atomic import atomic_path, atomic_write_text  # noqa: E402
from fashionviewer.core.base.paths import MODELS_DIR  # noqa: E402
from fashionviewer.core.models.classifier import BUNDLED_CLASSIFIERS  # noqa: E402
from fashionviewer.core.models.cnn import PAPER_ACCURACY, PAPER_PARAMETERS  # noqa: E402
from trainers import fmnist  # noqa: E402
from trainers.common import Cancelled  # noqa: E402

PAPER_EPOCHS = 50
# The paper's protocol: Adam at Keras' default learning rate, nothing else.
PAPER_ARGS = [
    "--recipe",
    "paper",
    "--epochs",
    str(PAPER_EPOCHS),
    "--lr",
    "1e-3",
    "--batch-size",
    "128",
    "--threads",
    "1",
]


def run_paper_protocol(models: list[str], work: Path, extra: list[str]) -> None:
    for name in models:
        argv = [
            "--model",
            name,
            "--out",
            str(work),
            "--resume",
            "--events",
            str(work / f"{name}.events.jsonl"),
            *PAPER_ARGS,
            *extra,
        ]
        try:
            fmnist.main(fmnist.get_args_parser().parse_args(argv))
        # Ctrl-C / SIGTERM: the last epoch's checkpoint stays; running again resumes it
        except Cancelled:
            logging.warning("%s stopped; run this script again to resume it", name)
            return


def read_cards(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.is_file()]


def _paper_cells(arch: str) -> tuple[str, str]:
    params = f"{PAPER_PARAMETERS[arch]:,}" if arch in PAPER_PARAMETERS else "—"
    acc = f"{PAPER_ACCURACY[arch]:.3f}" if arch in PAPER_ACCURACY else "—"
    return params, acc


def protocol_table(cards: list[dict[str, Any]]) -> str:
    lines = [
        "| model | parameters (paper) | epochs run / 50 | test accuracy (paper) | micro F1 | macro F1 | "
        "best val acc (epoch) | s/epoch (CPU s/epoch) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for card in cards:
        arch, hist = card["architecture"], card["history"]
        params, paper_acc = _paper_cells(arch)
        best = max(hist, key=lambda h: h["val_acc"])
        wall = sum(h["seconds"] for h in hist) / len(hist)
        cpu = [h["cpu_seconds"] for h in hist if "cpu_seconds" in h]
        cpu_text = f" ({sum(cpu) / len(cpu):.1f})" if cpu else ""
        m = card.get("metrics")
        if m:
            test = f"**{m['test_accuracy']:.4f}** ({paper_acc}) | {m['micro_f1']:.4f} | {m['macro_f1']:.4f}"
        else:
            test = f"not reached yet ({paper_acc}) | — | —"
        lines.append(
            f"| {arch} | {card['parameters']:,} ({params}) | {len(hist)} | {test} | "
            f"{best['val_acc']:.4f} ({best['epoch']}) | {wall:.1f}{cpu_text} |"
        )
    return "\n".join(lines) + "\n"


def shipped_table(cards: list[dict[str, Any]]) -> str:
    lines = [
        "| model | parameters (paper) | epochs | test accuracy (paper) | micro F1 | macro F1 | "
        "training time | recipe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for card in cards:
        arch, t, m = card["architecture"], card["training"], card["metrics"]
        params, paper_acc = _paper_cells(arch)
        tta = " + flip TTA" if (card.get("test_time_augmentation") or {}).get("hflip") else ""
        cpu = f", {t['cpu_seconds'] / 60:.1f} CPU min" if "cpu_seconds" in t else ""
        recipe = (
            f"{t['recipe']}: {t.get('optimizer', 'Adam')} lr {t['lr']}, {t.get('schedule', 'one-cycle')}, "
            f"batch {t['batch_size']}, {t['augmentation']}, label smoothing {t['label_smoothing']}{tta}"
        )
        if t.get("init", "random") != "random":
            recipe += f"; fine-tuned from {t['init']}"
        if t.get("distillation"):
            kd = t["distillation"]
            recipe += (
                f"; distilled from {' + '.join(kd['teachers'])} (alpha {kd['alpha']}, "
                f"temperature {kd['temperature']})"
            )
        if "no validation" in t.get("split", ""):
            recipe += "; all 60,000 training images"
        lines.append(
            f"| {card['name']} ({arch}) | {card['parameters']:,} ({params}) | {t['epochs']} | "
            f"**{m['test_accuracy']:.4f}** ({paper_acc}) | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | "
            f"{t['seconds'] / 60:.1f} min wall{cpu}, {t['torch_threads']} thread{'s' * (t['torch_threads'] > 1)} | "
            f"{recipe} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(cards: list[dict[str, Any]], path: Path, max_epoch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for card in cards:
        hist = [h for h in card["history"] if h["epoch"] <= max_epoch]
        epochs = [h["epoch"] for h in hist]
        for key, style in (("train", "--"), ("val", "-")):
            label = f"{card['architecture']} {key}"
            ax_acc.plot(epochs, [h[f"{key}_acc"] for h in hist], style, label=label)
            ax_loss.plot(epochs, [h[f"{key}_loss"] for h in hist], style, label=label)
    reached = ", ".join(f"{c['architecture']} {min(len(c['history']), max_epoch)}" for c in cards)
    ax_acc.set(
        title=f"accuracy, paper protocol, {max_epoch} epochs (reached: {reached})",
        xlabel="epoch",
        xlim=(1, max_epoch),
        ylim=(0.8, 1.0),
    )
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", xlim=(1, max_epoch))
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["cnn1", "cnn2", "cnn3"], choices=sorted(PAPER_PARAMETERS)
    )
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "fmnist_paper")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing; report what --work holds"
    )
    parser.add_argument(
        "--note", default="", help="a sentence added under the protocol table (e.g. the contention)"
    )
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.report_only:
        run_paper_protocol(args.models, args.work, extra)
    protocol = read_cards([args.work / f"{m}.json" for m in args.models])
    shipped = read_cards([MODELS_DIR / f"{n}.json" for n in BUNDLED_CLASSIFIERS])
    text = (
        "# Fashion-MNIST: the paper's CNNs side by side\n\n"
        "Test set: the 10,000 Fashion-MNIST test images; train/validation: the 48,000/12,000 seeded split "
        "(seed 0) unless a row says otherwise. Figures in parentheses are the paper's (50 epochs). Accuracy, "
        "micro and macro F1 are measured by `trainers.fmnist.evaluate` and `core.data.metrics`. Written by "
        "`python benchmarks/fmnist_paper.py` on a 2-core CPU shared with other jobs: wall times are upper "
        "bounds; CPU seconds (one torch thread) are what the run itself used.\n\n"
        "## The paper's protocol (plain Adam lr 1e-3, batch 128, no augmentation, 50 epochs)\n\n"
        + (protocol_table(protocol) if protocol else "No run in the work folder yet.\n")
        + (f"\n{args.note}\n" if args.note else "")
        + "\nCurves: `fmnist_curves_10.png` (Fig. 3, 10 epochs) and `fmnist_curves_50.png` (Fig. 4, 50 epochs).\n\n"
        "## Shipped classifiers (`resources/models/`, best first)\n\n" + shipped_table(shipped)
    )
    atomic_write_text(args.results / "fmnist_paper.md", text)
    if protocol:
        plot_curves(protocol, args.results / "fmnist_curves_10.png", 10)
        plot_curves(protocol, args.results / "fmnist_curves_50.png", PAPER_EPOCHS)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
