"""``fashionviewer predict``: shards + merge equal one run, resume after a kill, the persistent cache,
and the bad-input folder (one line per unreadable file, exit 3, EXIF-rotated masks at display size).

Every run uses one torch thread: CPU kernels with different thread counts differ in the last bits,
which would make byte-level comparisons between processes flaky.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionviewer.__main__ import main as dispatch
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.inference.predictor import Predictor
from fashionviewer.core.models.registry import save_checkpoint
from fashionviewer.core.runs.cache import close_shared_caches, default_cache_path, open_cache
from fashionviewer.core.runs.folder_run import Shard, parse_shard
from fashionviewer.core.runs.journal import PARTIAL_FILE, PartialResults
from fashionviewer.core.viewer.model_choice import ModelChoice
from fashionviewer.predict import main
from tests.core.inference.test_inference import CLASS_NAMES, _calibrated_light_model
from tests.core.runs.test_cache import overwrite_inside
from tests.fixtures.bad_inputs import OTHER_FILES, build_bad_input_folder

REPO = Path(__file__).resolve().parents[1]
N_PHOTOS = 12


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """Two light Mask R-CNNs (128 px) with different weights that detect things on random-ish images."""
    root = tmp_path_factory.mktemp("models")
    for seed in (0, 1):
        save_checkpoint(
            _calibrated_light_model(seed),
            root / f"light{seed}.pt",
            {"class_names": CLASS_NAMES, "weights": "trained"},
        )
    return root / "light0.pt", root / "light1.pt"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(N_PHOTOS):
        h, w = int(rng.integers(90, 160)), int(rng.integers(90, 200))
        img = (rng.random((h, w, 3)) * 80).astype(np.uint8)
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        img[y : y + h // 2, x : x + w // 2] = rng.integers(120, 255, 3)
        target = folder / ("sub" if i % 4 == 3 else "") / f"p{i:02d}.{'jpg' if i % 3 else 'png'}"
        target.parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(target)
    return folder


@pytest.fixture
def model_calls(monkeypatch) -> list[int]:
    """Images that went through the Mask R-CNN in this process (every Predictor path ends here)."""
    calls: list[int] = []
    original = Predictor.predict_tensors

    def counting(self, images, *args, **kwargs):
        calls.append(len(images))
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_tensors", counting)
    return calls


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _args(folder: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [
        str(folder),
        "--out",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--min-score",
        "0.1",
        *extra,
    ]


def _outputs(out: Path) -> tuple[list[dict], list[dict]]:
    return json.loads((out / "predictions.json").read_text()), json.loads(
        (out / "images.json").read_text()
    )


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_torchrun_shards_and_merge_equal_a_single_run(photos, checkpoints, tmp_path, model_calls):
    sharded = tmp_path / "sharded"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "fashionviewer.predict",
        *_args(photos, sharded, checkpoints[0], "--no-cache"),
    ]
    result = subprocess.run(
        command, cwd=REPO, env=_subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "merged 2 shard(s)" in result.stdout

    single = tmp_path / "single"
    assert main(_args(photos, single, checkpoints[0], "--no-cache")) == 0
    assert sum(model_calls) == N_PHOTOS
    results, index = _outputs(single)
    # something to compare, on every image
    assert len(results) > N_PHOTOS and len(index) == N_PHOTOS
    assert _outputs(sharded) == (results, index)  # same ids, instances, scores, boxes and RLE
    for i in (0, 1):  # each process predicted its half: ids (i-1) % 2 == shard
        part = json.loads((sharded / f"images.shard-{i}-of-2.json").read_text())
        assert [e["image_id"] for e in part] == list(range(i + 1, N_PHOTOS + 1, 2))
    run = json.loads((sharded / "run.json").read_text())
    assert run["shards"] == 2 and run["predicted"] == N_PHOTOS and run["model_runs"] == N_PHOTOS

    # The merge command alone, from the shard files.
    for name in ("predictions.json", "images.json", "run.json"):
        (sharded / name).unlink()
    assert main(["--merge", str(sharded)]) == 0
    assert _outputs(sharded) == (results, index)


def test_merge_refuses_missing_or_mismatched_shards(photos, checkpoints, tmp_path):
    out = tmp_path / "out"
    assert main(_args(photos, out, checkpoints[0], "--shard", "1/3", "--limit", "4")) == 0
    with pytest.raises(FashionViewerError, match=r"shard\(s\) 0/3, 2/3 not finished"):
        main(["--merge", str(out)])
    with pytest.raises(FashionViewerError, match="no shard results to merge"):
        main(["--merge", str(tmp_path)])
    assert (
        parse_shard("2/3") == Shard(2, 3)
        and Shard(1, 2).name("run.json") == "run.shard-1-of-2.json"
    )
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(FashionViewerError, match=f"--shard {bad}"):
            parse_shard(bad)


def test_killed_run_resumes_with_only_the_rest(photos, checkpoints, tmp_path, model_calls):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "fashionviewer.predict",
        *_args(photos, out, checkpoints[0], "--no-cache", "--workers", "0"),
    ]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=_subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = out / PARTIAL_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.is_file() and partial.read_bytes().count(b"\n") >= 4:  # header + 3 images
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    assert not (out / "predictions.json").exists()
    lines = partial.read_bytes().count(b"\n")
    done = lines - 1
    assert 3 <= done < N_PHOTOS
    with open(partial, "ab") as fh:  # as if killed in the middle of writing a line
        fh.write(b'{"file_name": "p11.jpg", "stat": [1, 2], "predic')

    assert main(_args(photos, out, checkpoints[0], "--no-cache")) == 0
    assert sum(model_calls) == N_PHOTOS - done  # only the rest
    results, index = _outputs(out)
    assert [e["image_id"] for e in index] == list(range(1, N_PHOTOS + 1))
    assert not partial.exists()  # the final files replace it
    run = json.loads((out / "run.json").read_text())
    assert run["resumed"] == done and run["model_runs"] == N_PHOTOS - done

    fresh = tmp_path / "fresh"
    assert main(_args(photos, fresh, checkpoints[0], "--no-cache")) == 0
    assert _outputs(fresh) == (results, index)  # resuming changed nothing


def test_cache_second_run_predicts_nothing_and_new_weights_run_again(
    photos, checkpoints, tmp_path, model_calls, capsys
):
    first = tmp_path / "first"
    assert main(_args(photos, first, checkpoints[0])) == 0
    assert sum(model_calls) == N_PHOTOS
    assert len(open_cache()) == N_PHOTOS  # the default cache (this test's own, see conftest)

    model_calls.clear()
    again = tmp_path / "again"
    assert main(_args(photos, again, checkpoints[0], "--min-score", "0.3")) == 0
    assert model_calls == []  # --min-score only filters what the cache holds
    assert f"({N_PHOTOS} from the cache)" in capsys.readouterr().out
    results, index = _outputs(again)
    assert results and all(r["score"] >= 0.3 for r in results)
    assert (
        results == [r for r in _outputs(first)[0] if r["score"] >= 0.3]
        and index == _outputs(first)[1]
    )

    # Shards read the same cache: still no model run, and the merge equals the single run.
    shards = tmp_path / "shards"
    for i in (0, 1):
        assert main(_args(photos, shards, checkpoints[0], "--shard", f"{i}/2")) == 0
    assert main(["--merge", str(shards)]) == 0
    assert model_calls == [] and _outputs(shards) == _outputs(first)

    other = tmp_path / "other"
    assert main(_args(photos, other, checkpoints[1])) == 0  # new weights: never the stale results
    assert sum(model_calls) == N_PHOTOS
    assert _outputs(other)[0] != _outputs(first)[0]

    model_calls.clear()
    assert (
        main(_args(photos, tmp_path / "nocache", checkpoints[0], "--no-cache", "--limit", "2")) == 0
    )
    assert sum(model_calls) == 2


def test_damaged_cache_records_are_predicted_again_and_named(
    photos, checkpoints, tmp_path, model_calls, capsys
):
    assert main(_args(photos, tmp_path / "clean", checkpoints[0], "--limit", "4")) == 0
    # folds the write-ahead log into the file: the payloads are in its pages now
    close_shared_caches()
    damaged = ("p01.jpg", "p02.jpg")
    for name in damaged:  # 40 bytes inside each record's stored payload, overwritten in place
        assert overwrite_inside(default_cache_path(), f'"file_name":"{name}"'.encode()) == 1
    model_calls.clear()
    capsys.readouterr()

    again = tmp_path / "again"
    assert main(_args(photos, again, checkpoints[0], "--limit", "4")) == 0
    assert sum(model_calls) == len(damaged)  # only the damaged ones ran the model
    err = capsys.readouterr().err.strip().splitlines()  # one line per damaged image, naming it
    assert len(err) == len(damaged) and all(
        line.startswith("warning: ") and "damaged prediction cache" in line for line in err
    )
    assert sorted(line.split(": ")[1] for line in err) == [str(photos / name) for name in damaged]
    assert _outputs(again) == _outputs(tmp_path / "clean")  # equal to a clean run

    model_calls.clear()
    assert main(_args(photos, tmp_path / "third", checkpoints[0], "--limit", "4")) == 0
    assert model_calls == []  # the re-predicted records were stored again, intact


def test_unusable_cache_and_concurrent_runs_are_one_line_errors(
    photos, checkpoints, tmp_path, capsys
):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = dispatch(
        [
            "predict",
            *_args(photos, tmp_path / "out", checkpoints[0], "--cache", str(blocker / "c.db")),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2
        and len(err) == 1
        and err[0].startswith("error: --cache ")
        and str(blocker) in err[0]
    )

    header = {"format": "x", "model_key": "k", "folder": "f"}
    with PartialResults(tmp_path / "p.jsonl", header):
        with pytest.raises(FashionViewerError, match="another `fashionviewer predict` is writing"):
            with PartialResults(tmp_path / "p.jsonl", header):
                pass


def test_bad_input_folder(checkpoints, tmp_path, capsys):
    folder = tmp_path / "bad inputs"
    expect = build_bad_input_folder(folder)
    out = tmp_path / "out"
    code = dispatch(["predict", *_args(folder, out, checkpoints[0], "--min-score", "0.0")])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "Traceback" not in captured.err and "Warning" not in captured.err
    bad = {name: want["error"] for name, want in expect.items() if want["error"] is not None}
    lines = captured.err.strip().splitlines()
    for name, fragment in bad.items():
        mentions = [line for line in lines if name in line]
        assert len(mentions) == 1 and fragment in mentions[0], (name, mentions)
    assert len(lines) == len(bad)  # nothing else on stderr
    assert (
        f"skipped {len(bad)} unreadable file(s); {len(OTHER_FILES)} other file(s) ignored"
        in captured.out
    )

    results, index = _outputs(out)
    sizes = {e["file_name"]: (e["width"], e["height"]) for e in index}
    assert sizes == {
        name: tuple(want["size"]) for name, want in expect.items() if want["error"] is None
    }
    rotated = [r for r in results if r["file_name"] == "exif_rotated.jpg"]
    assert rotated, "the model should find something on the rotated image"
    # displayed (rotated) size, not stored
    assert all(r["segmentation"]["size"] == [96, 64] for r in rotated)
    # thin strips predicted, masks at their own size
    for strip in ("strip_wide.png", "strip_tall.png"):
        found = [r for r in results if r["file_name"] == strip]
        width, height = expect[strip]["size"]
        assert found and all(r["segmentation"]["size"] == [height, width] for r in found), strip
    run = json.loads((out / "run.json").read_text())
    assert len(run["skipped"]) == len(bad)
    assert run["other_files_ignored"] == len(OTHER_FILES) and run["other_files"] == sorted(
        OTHER_FILES
    )

    # The project's own files are not "other files": the annotation file, this run's and earlier runs' outputs.
    (folder / "annotations.fashionviewer.json").write_text("{}", encoding="utf-8")
    (folder / "old run").mkdir()
    (folder / "old run" / "run.json").write_text("{}", encoding="utf-8")
    (folder / "old run" / "log.txt").write_text("", encoding="utf-8")
    inside = folder / "results"
    assert dispatch(["predict", *_args(folder, inside, checkpoints[0])]) == 3
    assert f"; {len(OTHER_FILES)} other file(s) ignored;" in capsys.readouterr().out
    assert json.loads((inside / "run.json").read_text())["other_files"] == sorted(OTHER_FILES)


def test_bundled_demo_run_is_re_scored_and_augmented_and_says_so(tmp_path, capsys):
    from fashionviewer.core.base.paths import DEMO_DIR, MODELS_DIR, sha256_file

    card = json.loads((MODELS_DIR / "maskrcnn_demo.json").read_text())
    views = len(card["test_time_augmentation"]["sizes"]) * 2  # each size also mirrored
    out = tmp_path / "out"
    assert (
        main(
            [
                str(DEMO_DIR),
                "--out",
                str(out),
                "--model",
                "demo",
                "--limit",
                "2",
                "--no-cache",
                "--device",
                "cpu",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (
        f"with maskrcnn_demo re-scored by fvnet_scenes ({views} views) on cpu"
        in capsys.readouterr().out
    )
    run = json.loads((out / "run.json").read_text())
    rescorer_sha = sha256_file(MODELS_DIR / "fvnet_scenes.pt")
    assert run["rescored_by"] == {
        "classifier": "fvnet_scenes",
        "weights_sha256": rescorer_sha,
        "hflip": True,
        "power": card["rescorer"]["power"],
    }
    assert run["test_time_augmentation"]["sizes"] == card["test_time_augmentation"]["sizes"]
    results = json.loads((out / "predictions.json").read_text())
    assert results and all(0 < r["score"] <= 1 for r in results)

    single = tmp_path / "single"
    assert (
        main(
            [
                str(DEMO_DIR),
                "--out",
                str(single),
                "--limit",
                "2",
                "--no-cache",
                "--no-tta",
                "--device",
                "cpu",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert "re-scored by fvnet_scenes on cpu" in capsys.readouterr().out
    assert json.loads((single / "run.json").read_text())["test_time_augmentation"] is None


def test_coco_model_resolves_as_in_the_viewer(photos, tmp_path, monkeypatch, capsys):
    """``--model coco`` goes through load_predictor like the viewer's model bar: without torchvision's
    COCO weights in the torch cache both give the same one-line error naming the file to place."""
    from fashionviewer.core.inference.defaults import COCO_MODEL
    from fashionviewer.core.viewer.model_choice import load_models

    # an empty torch cache: nothing to find
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    loader = load_models(ModelChoice(COCO_MODEL, "cpu"))
    next(loader)  # the "Loading…" status line
    with pytest.raises(FashionViewerError) as viewer_error:
        next(loader)
    code = dispatch(
        [
            "predict",
            str(photos),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "coco",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {viewer_error.value}"]
    assert "maskrcnn_resnet50_fpn_coco" in err[0] and str(tmp_path / "torch") in err[0]
