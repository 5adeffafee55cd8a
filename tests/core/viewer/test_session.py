"""core.session: navigation, filter, threshold/class filtering from the cache, events, work order."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from fashionviewer.core.data.masks import encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.viewer.session import ViewerSession, WorkQueue


def _folder(tmp_path: Path, n: int = 7) -> Path:
    for i in range(n):
        (tmp_path / f"img{i:02d}.png").write_bytes(b"")  # listing never decodes
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def _prediction(name: str) -> ImagePrediction:
    mask = np.zeros((20, 30), np.uint8)
    mask[2:10, 3:12] = 1
    insts = [Instance((3, 2, 12, 10), 1, "Dress", s, encode_mask(mask)) for s in (0.9, 0.6, 0.2)]
    insts.append(Instance((0, 0, 5, 5), 9, "Bag", 0.8, encode_mask(mask)))
    return ImagePrediction(name, 30, 20, insts)


class Recorder:
    def __init__(self, session: ViewerSession) -> None:
        self.calls: list[tuple[str, tuple]] = []
        for name in vars(session.events):
            getattr(session.events, name).connect(lambda *a, n=name: self.calls.append((n, a)))

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


def test_navigation_and_filter(tmp_path: Path) -> None:
    s = ViewerSession()
    rec = Recorder(s)
    s.open_folder(_folder(tmp_path))
    assert len(s.images) == 7 and s.current == tmp_path / "img00.png"
    assert rec.names()[:3] == ["folder_changed", "images_changed", "current_changed"]
    s.next()
    s.next()
    assert s.index == 2
    s.last()
    assert s.index == 6
    s.next()
    assert s.index == 6  # stays on the last image
    s.first()
    s.previous()
    assert s.index == 0
    s.set_filter("img0")
    assert len(s.images) == 7
    s.set_filter("05")
    assert s.images == [tmp_path / "img05.png"] and s.current == tmp_path / "img05.png"
    s.set_filter("")
    assert len(s.images) == 7 and s.current == tmp_path / "img05.png"


def test_threshold_and_classes_filter_cached_prediction(tmp_path: Path) -> None:
    s = ViewerSession()
    s.open_folder(_folder(tmp_path))
    s.set_model_key("m")
    s.add_prediction(s.current, _prediction("img00.png"))
    assert s.known_classes == {"Dress": 1, "Bag": 9}
    s.set_threshold(0.5)
    assert s.counts() == (3, 4) and s.visible_indices() == [0, 1, 3]
    s.set_class_visible("Bag", False)
    assert s.visible_indices() == [0, 1] and s.visible_classes() == ["Dress"]
    s.set_threshold(0.1)
    assert s.counts() == (3, 4)
    # Bag is hidden... selection of hidden instances is dropped on the next filter change
    s.select(3)
    s.set_threshold(0.15)
    assert s.selected is None
    rasters = s.rasters()
    assert rasters is s.rasters()  # decoded once, cached
    # the top-scoring of the overlapping instances
    assert rasters.instance_at(5, 5, s.visible_indices()) == 0
    assert rasters.instance_at(25, 15, s.visible_indices()) is None


def test_layers_and_events(tmp_path: Path) -> None:
    s = ViewerSession()
    rec = Recorder(s)
    s.toggle_layer("boxes")
    s.set_layer("boxes", False)  # no change, no event
    assert s.layers["boxes"] is False and rec.names() == ["layers_changed"]
    with pytest.raises(KeyError):
        s.set_layer("nope", True)


def test_pending_order_is_current_then_neighbours(tmp_path: Path) -> None:
    s = ViewerSession()
    s.open_folder(_folder(tmp_path))
    s.go(3)
    s.add_prediction(s.images[4], _prediction("img04.png"))
    s.add_error(s.images[2], "img02.png: not an image file")
    order = [p.name for p in s.pending_order()]
    # forward first
    assert order == ["img03.png", "img05.png", "img01.png", "img06.png", "img00.png"]


def test_work_queue_reorders_and_never_hands_out_twice() -> None:
    paths = [Path(f"{i}") for i in range(6)]
    q = WorkQueue(paths)
    assert q.take() == Path("0")
    q.reorder([Path("0"), Path("5"), Path("4")])
    assert [q.take(), q.take(), q.take()] == [Path("5"), Path("4"), None]
    taken: list[Path] = []
    q2 = WorkQueue([Path(str(i)) for i in range(1000)])

    def worker() -> None:
        while (p := q2.take()) is not None:
            taken.append(p)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == len(set(taken)) == 1000
