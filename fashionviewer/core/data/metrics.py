"""Classification metrics (numpy only): accuracy, micro/macro F1, confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_report(
    labels: np.ndarray, predicted: np.ndarray, num_classes: int
) -> dict[str, object]:
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    cm = confusion_matrix(labels, predicted, num_classes)
    tp = np.diag(cm).astype(np.float64)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(tp),
        where=(precision + recall) > 0,
    )
    accuracy = float(tp.sum() / max(len(labels), 1))
    return {
        "accuracy": accuracy,
        # Single-label multi-class: micro precision = micro recall = micro F1 = accuracy.
        "micro_f1": accuracy,
        "macro_f1": float(f1.mean()),
        "per_class_f1": [round(float(v), 4) for v in f1],
        "confusion": cm.tolist(),
    }
