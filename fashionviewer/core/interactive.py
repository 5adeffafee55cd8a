"""Interactive segmentation (box and/or clicks -> mask): re-exports :mod:`fashionviewer.core.inference.interactive`."""

from fashionviewer.core.inference.interactive import (
    DEFAULT_MAX_SIDE,
    METHOD_GRABCUT,
    METHOD_LEARNED,
    InteractiveInputError,
    InteractiveSession,
    grabcut_segment,
    model_box_prior,
    segment,
)

__all__ = ["segment", "grabcut_segment", "InteractiveSession", "InteractiveInputError", "model_box_prior",
           "DEFAULT_MAX_SIDE", "METHOD_LEARNED", "METHOD_GRABCUT"]
