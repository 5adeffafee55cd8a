"""The persistent SQLite prediction cache: keys, staleness, crash safety, corruption recovery."""

import hashlib
import json
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np

from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.runs.cache import BoundCache, DamagedRecord, PredictionCache, model_key


def prediction(n: int = 3, name: str = "a.jpg") -> ImagePrediction:
    instances = []
    for i in range(n):
        mask = np.zeros((40, 50), np.uint8)
        mask[i : i + 10, 2 * i : 2 * i + 20] = 1
        instances.append(
            Instance(
                box=(2 * i, i, 2 * i + 20, i + 10),
                label=i + 1,
                class_name=f"c{i}",
                score=0.9 - 0.1 * i,
                rle=encode_mask(mask),
            )
        )
    return ImagePrediction(file_name=name, width=50, height=40, instances=instances, model="demo")


def test_round_trip_and_keys(tmp_path):
    image = tmp_path / "img.jpg"
    image.write_bytes(b"pretend jpeg bytes")
    key = model_key("weights-A", {"score_floor": 0.05, "min_size": 512})
    with PredictionCache(tmp_path / "c.sqlite3") as cache:
        digest = cache.image_hash(image)
        cache.put(digest, key, prediction())
        back = cache.get(digest, key)
    assert back is not None and back.to_dict() == prediction().to_dict()
    assert np.array_equal(back.instances[1].mask(), prediction().instances[1].mask())
    with PredictionCache(tmp_path / "c.sqlite3") as cache:  # persists across sessions
        assert cache.get(digest, key) is not None
        # New weights or other settings never return the old result.
        assert (
            cache.get(digest, model_key("weights-B", {"score_floor": 0.05, "min_size": 512}))
            is None
        )
        assert (
            cache.get(digest, model_key("weights-A", {"score_floor": 0.3, "min_size": 512})) is None
        )
        image.write_bytes(b"other content")
        assert cache.get(cache.image_hash(image), key) is None


def test_corrupt_file_is_set_aside_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with caplog.at_level(logging.WARNING), PredictionCache(path) as cache:
        assert len(cache) == 0
        cache.put("h", "k", prediction())
        assert cache.get("h", "k") is not None
    assert "moved aside" in caplog.text
    assert list(tmp_path.glob("c.sqlite3.corrupt-*"))


def test_killed_writer_leaves_a_readable_cache(tmp_path):
    path = tmp_path / "c.sqlite3"
    writer = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path.parent)!r})
        from fashionviewer.core.runs.cache import PredictionCache
        from tests.core.runs.test_cache import prediction
        cache = PredictionCache({str(path)!r})
        i = 0
        while True:
            cache.put(f"h{{i}}", "k", prediction(20))
            i += 1
            if i == 5:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", writer],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[3]),
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with PredictionCache(path) as cache:
        count = len(cache)
        assert count >= 5
        assert all(cache.get(f"h{i}", "k") is not None for i in range(5))
    assert not list(tmp_path.glob("*.corrupt-*"))


def overwrite_inside(path, marker: bytes, count: int = 40) -> int:
    """Overwrite ``count`` bytes in place right after ``marker`` (inside a stored payload), as a disk or
    a stray write would: SQLite's page structure stays intact. Returns how many places were hit."""
    data = bytearray(path.read_bytes())
    hits = 0
    start = data.find(marker)
    while start >= 0:
        at = start + len(marker)
        data[at : at + count] = bytes(b ^ 0x5A for b in data[at : at + count])
        hits += 1
        start = data.find(marker, at + count)
    path.write_bytes(bytes(data))
    return hits


def test_damaged_records_are_dropped_and_reported(tmp_path):
    path = tmp_path / "c.sqlite3"
    with PredictionCache(path) as cache:
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            cache.put(name, "k", prediction(5, name))
    # Closed: the write-ahead log is folded into the file, so the payloads are in its pages.
    assert overwrite_inside(path, b'"file_name":"a.jpg"') == 1
    assert (
        overwrite_inside(path, b'"file_name":"b.jpg","width":50,"height":40,"model":"demo",', 40)
        == 1
    )

    with PredictionCache(path) as cache:
        assert len(cache) == 3  # SQLite itself sees nothing wrong
        for name in ("a.jpg", "b.jpg"):
            try:
                cache.get(name, "k")
            except DamagedRecord as exc:
                assert "checksum mismatch" in str(exc)
            else:
                raise AssertionError(f"{name}: damaged record served as valid")
            assert cache.get(name, "k") is None  # dropped: the next look-up is a plain miss
        assert cache.get("c.jpg", "k").to_dict() == prediction(5, "c.jpg").to_dict()
        assert len(cache) == 1


def test_bound_cache_names_the_image_of_a_damaged_record(tmp_path):
    image = tmp_path / "shirt.jpg"
    image.write_bytes(b"pretend jpeg bytes")
    warnings: list[str] = []
    with PredictionCache(tmp_path / "c.sqlite3") as cache:
        bound = BoundCache(cache, "k", "demo", warnings.append)
        digest, hit = bound.lookup(image, "shirt.jpg")
        assert hit is None
        bound.store(digest, prediction(2, "shirt.jpg"))
        # A payload that passes its checksum but is not a prediction (a writer's bug) is dropped too.
        bad = b'{"width": 3}'
        cache._write(
            "UPDATE predictions SET payload=?, payload_sha256=?",
            (bad, hashlib.sha256(bad).hexdigest()),
        )
        assert bound.lookup(image, "shirt.jpg") == (digest, None)
        assert len(cache) == 0
    assert len(warnings) == 1 and str(image) in warnings[0] and "undecodable payload" in warnings[0]


def test_a_cache_of_the_older_format_is_emptied_not_crashed_on(tmp_path, caplog):
    path = tmp_path / "c.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE predictions (image_sha256 TEXT NOT NULL, model_key TEXT NOT NULL, payload TEXT NOT NULL,
                                  created REAL NOT NULL, PRIMARY KEY (image_sha256, model_key));
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
    """)
    old.execute(
        "INSERT INTO predictions VALUES ('h', 'k', ?, 0)", (json.dumps(prediction().to_dict()),)
    )
    old.commit()
    old.close()
    with caplog.at_level(logging.INFO), PredictionCache(path) as cache:
        assert len(cache) == 0 and cache.get("h", "k") is None
        cache.put("h", "k", prediction())
        assert cache.get("h", "k") is not None
    assert "emptied" in caplog.text
    with PredictionCache(path) as cache:  # the new format is kept as it is
        assert len(cache) == 1
