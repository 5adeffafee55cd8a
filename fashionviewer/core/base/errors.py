"""User-facing errors: one line, naming the file/row and what is wrong."""

from __future__ import annotations


class FashionViewerError(Exception):
    """An error caused by user input (bad file, missing data, bad flag).

    Command-line entry points print ``error: <message>`` and exit with status 2
    instead of showing a traceback.
    """


class DataError(FashionViewerError):
    """A dataset or annotation file is missing, corrupt or malformed."""


class WeightsError(FashionViewerError):
    """Model weights are missing, unreadable or do not match the architecture."""
