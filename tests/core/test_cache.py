"""The persistent SQLite prediction cache: keys, staleness, crash safety, corruption recovery."""

import logging
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.runs.cache import PredictionCache, model_key


def prediction(n: int = 3, name: str = "a.jpg") -> ImagePrediction:
    instances = []
    for i in range(n):
        mask = np.zeros((40, 50), np.uint8)
        mask[i:i + 10, 2 * i:2 * i + 20] = 1
        instances.append(Instance(box=(2 * i, i, 2 * i + 20, i + 10), label=i + 1, class_name=f"c{i}",
                                  score=0.9 - 0.1 * i, rle=encode_mask(mask)))
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
        assert cache.get(digest, model_key("weights-B", {"score_floor": 0.05, "min_size": 512})) is None
        assert cache.get(digest, model_key("weights-A", {"score_floor": 0.3, "min_size": 512})) is None
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
        from tests.core.test_cache import prediction
        cache = PredictionCache({str(path)!r})
        i = 0
        while True:
            cache.put(f"h{{i}}", "k", prediction(20))
            i += 1
            if i == 5:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with PredictionCache(path) as cache:
        count = len(cache)
        assert count >= 5
        assert all(cache.get(f"h{i}", "k") is not None for i in range(5))
    assert not list(tmp_path.glob("*.corrupt-*"))
