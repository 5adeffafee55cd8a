"""Interactive segmentation (box + clicks -> mask): re-exports :mod:`fashionviewer.core.inference.interactive`."""

from fashionviewer.core.inference.interactive import DEFAULT_MAX_SIDE, InteractiveSession, model_box_prior, segment

__all__ = ["segment", "InteractiveSession", "model_box_prior", "DEFAULT_MAX_SIDE"]
