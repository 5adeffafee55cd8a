"""Persistent prediction cache: SQLite (stdlib), in the user's cache directory.

A row is keyed by the image's content hash (SHA-256 of the file bytes), the
weights' SHA-256 and the inference settings (score floor, image size, device
class...), so re-opening a folder shows every overlay without running the model
and new weights never show stale results. Every write is one transaction, so a
process killed mid-write leaves the database readable; a file that SQLite
cannot read is moved aside (``NAME.corrupt-<time>``) with a warning and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from .paths import sha256_file
from .predictions import ImagePrediction

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    image_sha256   TEXT NOT NULL,
    model_key      TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created        REAL NOT NULL,
    PRIMARY KEY (image_sha256, model_key)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("FASHIONVIEWER_CACHE", Path(user_cache_dir("fashionviewer")) / "predictions.sqlite3"))


def model_key(weights_sha256: str, settings: Mapping[str, Any]) -> str:
    """One string for 'these weights with these inference settings'."""
    blob = json.dumps({"weights": weights_sha256, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class PredictionCache:
    """Thread-safe get/put of ImagePrediction by (image content, model key)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("%s: prediction cache is unreadable (%s); moved aside to %s and rebuilt", self.path, exc, aside)
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def image_hash(self, image_path: str | os.PathLike[str]) -> str:
        """SHA-256 of the file bytes, memoised by (path, size, mtime) for this session."""
        stat = os.stat(image_path)
        memo = (str(image_path), stat.st_size, stat.st_mtime_ns)
        if memo not in self._hashes:
            self._hashes[memo] = sha256_file(image_path)
        return self._hashes[memo]

    def get(self, image_sha256: str, key: str) -> ImagePrediction | None:
        with self._lock:
            try:
                row = self._conn.execute("SELECT payload FROM predictions WHERE image_sha256=? AND model_key=?",
                                         (image_sha256, key)).fetchone()
            except sqlite3.DatabaseError as exc:
                log.warning("%s: cache read failed (%s); treating as a miss", self.path, exc)
                return None
        if row is None:
            return None
        try:
            return ImagePrediction.from_dict(json.loads(row[0]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: dropping an unreadable cache entry (%s)", self.path, exc)
            return None

    def put(self, image_sha256: str, key: str, prediction: ImagePrediction) -> None:
        payload = json.dumps(prediction.to_dict(), separators=(",", ":"))
        with self._lock:
            try:
                with self._conn:  # one transaction: all or nothing
                    self._conn.execute("BEGIN")
                    self._conn.execute("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?)",
                                       (image_sha256, key, payload, time.time()))
            except sqlite3.DatabaseError as exc:
                log.warning("%s: cache write failed (%s); continuing without caching", self.path, exc)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "PredictionCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
