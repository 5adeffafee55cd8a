"""Persistent prediction cache: SQLite (stdlib), in the user's cache directory.

A row is keyed by the image's content hash (SHA-256 of the file bytes), the
weights' SHA-256 and the inference settings (score floor, image size, device
class...), so re-opening a folder shows every overlay without running the model
and new weights never show stale results. Every write is one transaction, so a
process killed mid-write leaves the database readable; a file that SQLite
cannot read is moved aside (``NAME.corrupt-<time>``) with a warning and rebuilt.

SQLite does not notice bytes changed inside a page, so each record also stores
the SHA-256 of its payload: a record whose payload no longer matches it, or does
not decode, is deleted and reported (:class:`DamagedRecord`), and the caller
predicts that image again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.base.paths import sha256_file
from fashionviewer.core.data.predictions import ImagePrediction
from fashionviewer.core.inference.protocol import InstancePredictor

log = logging.getLogger(__name__)
# 2: payloads are UTF-8 JSON bytes (a BLOB, so damaged bytes still read back) with their SHA-256.
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    image_sha256   TEXT NOT NULL,
    model_key      TEXT NOT NULL,
    payload        BLOB NOT NULL,
    payload_sha256 TEXT NOT NULL,
    created        REAL NOT NULL,
    PRIMARY KEY (image_sha256, model_key)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class DamagedRecord(Exception):
    """A cached record whose payload fails its checksum or does not decode; it has been deleted."""


def default_cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(
        os.environ.get(
            "FASHIONVIEWER_CACHE", Path(user_cache_dir("fashionviewer")) / "predictions.sqlite3"
        )
    )


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
        except sqlite3.OperationalError:
            # cannot open or locked (no permission, a folder in the way): not corruption, keep the
            # file
            raise
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning(
                "%s: prediction cache is unreadable (%s); moved aside to %s and rebuilt",
                self.path,
                exc,
                aside,
            )
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._upgrade(conn)
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """A cache written by an older version (no checksums) is emptied: its records cannot be
        verified, and predicting again is always correct."""
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "predictions" not in tables:
            return
        found = (
            conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if "meta" in tables
            else None
        )
        if found is None or found[0] != str(SCHEMA_VERSION):
            log.info(
                "%s: prediction cache of format %s; emptied for format %s",
                self.path,
                found[0] if found else "?",
                SCHEMA_VERSION,
            )
            conn.execute("DROP TABLE predictions")

    def image_hash(self, image_path: str | os.PathLike[str]) -> str:
        """SHA-256 of the file bytes, memoised by (path, size, mtime) for this session."""
        stat = os.stat(image_path)
        memo = (str(image_path), stat.st_size, stat.st_mtime_ns)
        if memo not in self._hashes:
            self._hashes[memo] = sha256_file(image_path)
        return self._hashes[memo]

    def get(self, image_sha256: str, key: str) -> ImagePrediction | None:
        """The cached prediction, or None on a miss. Raises DamagedRecord (after deleting the record)
        when the stored payload fails its checksum or does not decode."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT payload, payload_sha256 FROM predictions "
                    "WHERE image_sha256=? AND model_key=?",
                    (image_sha256, key),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                log.warning("%s: cache read failed (%s); treating as a miss", self.path, exc)
                return None
        if row is None:
            return None
        payload, checksum = row
        payload = payload.encode() if isinstance(payload, str) else bytes(payload)
        if hashlib.sha256(payload).hexdigest() != checksum:
            self.delete(image_sha256, key)
            raise DamagedRecord("checksum mismatch")
        try:
            return ImagePrediction.from_dict(json.loads(payload))
        # the right bytes, yet not a prediction
        except (ValueError, KeyError, TypeError, FashionViewerError) as exc:
            self.delete(image_sha256, key)
            raise DamagedRecord(f"undecodable payload: {exc}") from exc

    def put(self, image_sha256: str, key: str, prediction: ImagePrediction) -> None:
        payload = json.dumps(prediction.to_dict(), separators=(",", ":")).encode()
        self._write(
            "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)",
            (image_sha256, key, payload, hashlib.sha256(payload).hexdigest(), time.time()),
        )

    def delete(self, image_sha256: str, key: str) -> None:
        self._write(
            "DELETE FROM predictions WHERE image_sha256=? AND model_key=?", (image_sha256, key)
        )

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            try:
                with self._conn:  # one transaction: all or nothing
                    self._conn.execute("BEGIN")
                    self._conn.execute(sql, args)
            except sqlite3.DatabaseError as exc:
                log.warning(
                    "%s: cache write failed (%s); continuing without caching", self.path, exc
                )

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


# --------------------------------------------------------------------------- predictor-bound use
# Shared by ``fashionviewer predict`` and the viewer, so a folder predicted by either is shown by the
# other without running the model: both key entries with :func:`predictor_key`.

_shared: dict[Path, PredictionCache] = {}
_shared_lock = threading.Lock()


def weights_sha256(predictor: InstancePredictor) -> str | None:
    """SHA-256 of the predictor's weights: its model card's (verified when loaded), else of its
    ``state_dict`` tensors (e.g. torchvision's COCO model); None: unknown, so do not cache."""
    return predictor.weights_sha256()


def predictor_settings(predictor: InstancePredictor) -> dict[str, Any]:
    """Everything besides the weights that changes ``predictor``'s output: its own ``settings()``."""
    return dict(predictor.settings())


def predictor_key(predictor: InstancePredictor) -> str | None:
    """The cache key of ``predictor`` (None: its weights cannot be identified, so do not cache)."""
    sha = weights_sha256(predictor)
    return model_key(sha, predictor_settings(predictor)) if sha else None


def open_cache(path: str | os.PathLike[str] | None = None) -> PredictionCache:
    """Open (once per process and path) the cache at ``path`` or the default location.

    Raises FashionViewerError when the file cannot be created or opened (no permission, not a folder).
    """
    target = Path(path) if path is not None else default_cache_path()
    with _shared_lock:
        cache = _shared.get(target.resolve())
        if cache is None:
            try:
                cache = PredictionCache(target)
            except (OSError, sqlite3.Error) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise FashionViewerError(
                    f"{target}: cannot open the prediction cache ({reason})"
                ) from exc
            _shared[target.resolve()] = cache
    return cache


def close_shared_caches() -> None:
    """Close every cache :func:`open_cache` opened (tests; the process exiting also does it)."""
    with _shared_lock:
        for cache in _shared.values():
            with contextlib.suppress(sqlite3.Error):
                cache.close()
        _shared.clear()


@dataclass
class BoundCache:
    """A PredictionCache bound to one predictor's key: look a file up before predicting, store after.

    ``warn`` receives one line naming the image when its cached record was damaged (and dropped):
    ``fashionviewer predict`` prints it on stderr, the viewer logs it."""

    cache: PredictionCache
    key: str
    model_name: str = ""
    warn: Callable[[str], None] = log.warning

    def lookup(
        self, path: str | os.PathLike[str], file_name: str, image_id: int = 0
    ) -> tuple[str | None, ImagePrediction | None]:
        """``(content hash, cached prediction or None)``; the hash is None when the file cannot be
        read (the decoder then reports why). The hit carries this file's name and id, not the name
        the same bytes had when they were cached."""
        try:
            digest = self.cache.image_hash(path)
        except OSError:
            return None, None
        try:
            hit = self.cache.get(digest, self.key)
        except DamagedRecord as exc:
            self.warn(f"{path}: damaged prediction cache record ({exc}); dropped, predicting again")
            return digest, None
        if hit is not None:
            hit = replace(
                hit, file_name=file_name, image_id=image_id, model=self.model_name or hit.model
            )
        return digest, hit

    def store(self, digest: str | None, prediction: ImagePrediction) -> None:
        """Cache the predictor's output as it came (call before anything else writes into it)."""
        if digest is not None:
            self.cache.put(digest, self.key, prediction)


def bind_cache(
    cache: PredictionCache | None,
    predictor: InstancePredictor,
    warn: Callable[[str], None] = log.warning,
) -> BoundCache | None:
    """``cache`` bound to ``predictor``'s key, or None when either is missing."""
    if cache is None:
        return None
    key = predictor_key(predictor)
    return BoundCache(cache, key, predictor.model_name or "", warn) if key else None
