"""Reproduce the paper's Fashion-MNIST table side by side with this machine's figures.

    python benchmarks/fmnist_paper.py [--models cnn1 cnn2 cnn3 fvnet] [--work DIR]

Each model is trained with ``trainers.fmnist`` (resumable: re-running continues
unfinished runs and re-measures finished ones) and evaluated on the 10,000 test
images. Writes ``benchmarks/results/fmnist_paper.md`` (parameters, epochs, test
accuracy, micro/macro F1, seconds per epoch next to the paper's figures) and
``benchmarks/results/fmnist_curves.png`` (train/validation accuracy and loss
per epoch, the paper's Fig. 3/4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fashionviewer.core.base.atomic import atomic_path, atomic_write_text  # noqa: E402
from fashionviewer.core.models.cnn import PAPER_ACCURACY, PAPER_PARAMETERS  # noqa: E402
from trainers import fmnist  # noqa: E402

# Per-model training settings used for the shipped figures.
SETTINGS: dict[str, list[str]] = {
    # Paper architectures: light dropout, shifts only, mild label smoothing (15 epochs, the paper used 50).
    "cnn1": ["--epochs", "15", "--lr", "2e-3", "--dropout", "0.1", "--label-smoothing", "0.05", "--no-flip"],
    "cnn2": ["--epochs", "15", "--lr", "2e-3", "--dropout", "0.1", "--label-smoothing", "0.05", "--no-flip"],
    "cnn3": ["--epochs", "15", "--lr", "2e-3", "--dropout", "0.1", "--label-smoothing", "0.05", "--no-flip"],
    "fvnet": ["--epochs", "15", "--lr", "3e-3", "--weight-decay", "0.05"],
}
PAPER_EPOCHS = 50


def run(models: list[str], work: Path, extra: list[str]) -> list[dict]:
    cards = []
    for name in models:
        argv = ["--model", name, "--out", str(work), "--resume", "--events", str(work / f"{name}.events.jsonl"),
                *SETTINGS[name], *extra]
        args = fmnist.get_args_parser().parse_args(argv)
        cards.append(fmnist.main(args))
    return cards


def markdown_table(cards: list[dict]) -> str:
    lines = [
        "| model | parameters (paper) | epochs (paper) | test accuracy (paper) | micro F1 | macro F1 | s/epoch | recipe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for card in cards:
        arch, m, t = card["architecture"], card["metrics"], card["training"]
        per_epoch = sum(h["seconds"] for h in card["history"]) / max(len(card["history"]), 1)
        paper_params = f"{PAPER_PARAMETERS[arch]:,}" if arch in PAPER_PARAMETERS else "—"
        paper_acc = f"{PAPER_ACCURACY[arch]:.3f}" if arch in PAPER_ACCURACY else "—"
        paper_epochs = PAPER_EPOCHS if arch in PAPER_PARAMETERS else "—"
        lines.append(f"| {arch} | {card['parameters']:,} ({paper_params}) | {t['epochs']} ({paper_epochs}) | "
                     f"**{m['test_accuracy']:.4f}** ({paper_acc}) | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | "
                     f"{per_epoch:.1f} | {t['recipe']}, lr {t['lr']}, batch {t['batch_size']} |")
    return "\n".join(lines) + "\n"


def plot_curves(cards: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for card in cards:
        epochs = [h["epoch"] for h in card["history"]]
        for key, style in (("train", "--"), ("val", "-")):
            ax_acc.plot(epochs, [h[f"{key}_acc"] for h in card["history"]], style, label=f"{card['architecture']} {key}")
            ax_loss.plot(epochs, [h[f"{key}_loss"] for h in card["history"]], style, label=f"{card['architecture']} {key}")
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0.8, 1.0))
    ax_loss.set(title="loss (train includes label smoothing)", xlabel="epoch")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn1", "cnn2", "cnn3", "fvnet"], choices=list(SETTINGS))
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "results" / "work")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args, extra = parser.parse_known_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cards = run(args.models, args.work, extra)
    table = markdown_table(cards)
    header = ("# Fashion-MNIST: the paper's CNNs side by side\n\n"
              "Test set: the 10,000 Fashion-MNIST test images; train/validation: 48,000/12,000 seeded split. "
              "Figures in parentheses are the paper's (50 epochs). Measured by `python benchmarks/fmnist_paper.py` "
              "on a 2-core CPU.\n\n")
    atomic_write_text(args.results / "fmnist_paper.md", header + table)
    plot_curves(cards, args.results / "fmnist_curves.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
