"""Trainers for FashionViewer's models: ``python -m trainers.fmnist`` and ``python -m trainers.maskrcnn``."""
