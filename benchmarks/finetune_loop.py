"""The annotation loop on the real-photo model, as a user runs it: annotate N photos, fine-tune, predict better.

    python benchmarks/finetune_loop.py [--photos 100] [--scenes 100] [--threads 2]

An annotator is simulated by writing ground truth as a folder's annotation file (every image marked done),
then exactly what the Train menu runs is run with its default settings:

    python -m trainers.parsing --dataset annotations --data-path FOLDER --init-from fashion --out OUT

Two cases, each scored with ``fashionviewer predict`` + ``fashionviewer evaluate`` on images it did not
train on, before (the shipped ``fashion``) and after:

* **photos**: the first ``--photos`` photos of CCP's training split as the user's corrections; segm/bbox AP
  on the 100 held-out CCP photos (``CCPDataset(split="val")``);
* **new domain**: ``--scenes`` Fashion-MNIST scenes (10 new class names, training items only) as the user's
  corrections; segm AP on 50 other scenes (test items only) over those 10 classes, and segm AP on the held-out
  CCP photos again (does the model still see garments?).

Writes ``benchmarks/results/finetune_loop.{md,json}`` with the commands, wall seconds of each fine-tune and
the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import parse_ccp_benchmark, run_benchmark  # noqa: E402

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fashionviewer.core.data.datasets.ccp import CCPDataset  # noqa: E402
from fashionviewer.core.data.datasets.fmnist_scenes import generate_scenes  # noqa: E402
from fashionviewer.core.models.checkpoint import read_card  # noqa: E402
from fashionviewer.evaluate import main as evaluate  # noqa: E402
from fashionviewer.predict import main as predict  # noqa: E402
from tests.fixtures.annotated_folder import write_annotated_folder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--photos", type=int, default=100, help="annotated CCP photos (default 100)"
    )
    parser.add_argument(
        "--scenes", type=int, default=100, help="annotated Fashion-MNIST scenes (default 100)"
    )
    parser.add_argument(
        "--eval-scenes", type=int, default=50, help="held-out scenes scored (default 50)"
    )
    parser.add_argument("--model", default="fashion", help="the start model (default fashion)")
    parser.add_argument(
        "--extra", default="", help="extra trainer options, e.g. '--epochs 4' (default: none)"
    )
    parsed = parse_ccp_benchmark(parser, argv, default_threads=2)
    if parsed is None:
        return 2
    args, root = parsed
    report: dict = {
        "model": args.model,
        "threads": args.threads,
        "load_average_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        val = CCPDataset(root, "val", taxonomy="imaterialist")
        val_dir = scratch / "ccp_val"
        val_dir.mkdir()
        for entry in val.images:
            os.symlink(entry.path, val_dir / entry.file_name)
        base_photos = _score_photos(args, args.model, val_dir, root, scratch / "base_photos")
        report["base"] = {"photos": base_photos}

        # photos: the user corrects N photos of the model's own domain
        train = CCPDataset(root, "train", taxonomy="imaterialist", limit=args.photos)
        folder = scratch / "my_photos"
        write_annotated_folder(
            folder, train.coco_ground_truth(), {e.file_name: e.path for e in train.images}
        )
        out, seconds, command = _finetune(args, folder, scratch / "ft_photos")
        report["photos"] = {
            "annotated_images": len(train.images),
            "finetune_seconds": seconds,
            "command": command,
            "card": _card_summary(out),
            "after": _score_photos(args, str(out), val_dir, root, scratch / "after_photos"),
        }

        # new domain: Fashion-MNIST scenes with their own ten class names
        scenes = scratch / "scenes"
        generate_scenes(scenes, args.scenes, args.eval_scenes, seed=0)
        user_gt = json.loads((scenes / "annotations" / "instances_train.json").read_text())
        folder = scenes / "train"
        write_annotated_folder(
            folder, user_gt, {i["file_name"]: folder / i["file_name"] for i in user_gt["images"]}
        )
        out, seconds, command = _finetune(args, folder, scratch / "ft_scenes")
        card = read_card(out)
        eval_gt = _remap_by_name(
            json.loads((scenes / "annotations" / "instances_val.json").read_text()), card
        )
        gt_file = scratch / "scenes_val_gt.json"
        gt_file.write_text(json.dumps(eval_gt))
        report["scenes"] = {
            "annotated_scenes": args.scenes,
            "eval_scenes": args.eval_scenes,
            "finetune_seconds": seconds,
            "command": command,
            "card": _card_summary(out),
            "after": _score(
                args, str(out), scenes / "val", ["--gt", str(gt_file)], scratch / "after_scenes"
            ),
            "base": _score(
                args,
                args.model,
                scenes / "val",
                ["--gt", str(gt_file)],
                scratch / "base_scenes",
                allow_fail=True,
            ),
            "after_photos": _score_photos(
                args, str(out), val_dir, root, scratch / "after_scenes_photos"
            ),
        }
    report["load_average_end"] = os.getloadavg()[0]
    base = report["base"]["photos"]["segm"]["AP"]
    report["targets"] = {
        "photos_segm_ap_not_below_base_minus_0.005": report["photos"]["after"]["segm"]["AP"]
        >= base - 0.005,
        "scenes_segm_ap_at_least_0.25": report["scenes"]["after"]["segm"]["AP"] >= 0.25,
        "photos_after_scenes_at_least_0.8x_base": report["scenes"]["after_photos"]["segm"]["AP"]
        >= 0.8 * base,
        "each_finetune_at_most_600_s": max(
            report["photos"]["finetune_seconds"], report["scenes"]["finetune_seconds"]
        )
        <= 600,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "finetune_loop.json", report)
    atomic_write_text(args.results / "finetune_loop.md", _markdown(report))
    print(_markdown(report))
    return 0


def _finetune(args: argparse.Namespace, folder: Path, out: Path) -> tuple[Path, float, str]:
    command = [
        sys.executable,
        "-m",
        "trainers.parsing",
        "--dataset",
        "annotations",
        "--data-path",
        str(folder),
        "--init-from",
        args.model,
        "--out",
        str(out),
        "--threads",
        str(args.threads),
        *args.extra.split(),
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    seconds = round(time.perf_counter() - start, 1)
    shown = " ".join(["python -m trainers.parsing", *command[3:]]).replace(str(folder), "FOLDER")
    return out / "model.pt", seconds, shown.replace(str(out), "OUT")


def _score_photos(
    args: argparse.Namespace, model: str, photos: Path, root: Path, out: Path
) -> dict:
    return _score(args, model, photos, ["--gt", str(root), "--split", "val"], out)


def _score(
    args: argparse.Namespace,
    model: str,
    photos: Path,
    gt: list[str],
    out: Path,
    allow_fail: bool = False,
) -> dict:
    status = predict(
        [
            str(photos),
            "--model",
            model,
            "--out",
            str(out),
            "--min-score",
            "0.001",
            "--no-cache",
            "--threads",
            str(args.threads),
        ]
    )
    if status != 0:
        raise RuntimeError(f"predict failed on {photos} with {model}")
    predictions = out / "predictions.json"
    # a COCO ground truth of its own classes: score only predictions of those
    if "--split" not in gt:
        truth = json.loads(Path(gt[1]).read_text())
        wanted = {c["id"] for c in truth["categories"]}
        records = [p for p in json.loads(predictions.read_text()) if p["category_id"] in wanted]
        predictions = out / "predictions.gt_classes.json"
        predictions.write_text(json.dumps(records))
        if not records:
            return {
                "segm": {"AP": None},
                "bbox": {"AP": None},
                "note": "no prediction of these classes",
            }
    scores = {}
    for iou in ("segm", "bbox"):
        target = out / f"{iou}.json"
        status = evaluate([*gt, "--pred", str(predictions), "--iou", iou, "--json", str(target)])
        if status != 0:
            if allow_fail:
                return {
                    "segm": {"AP": None},
                    "bbox": {"AP": None},
                    "note": "the start model has no such classes",
                }
            raise RuntimeError(f"evaluate failed for {out}")
        metrics = json.loads(target.read_text())
        scores[iou] = {k: metrics[k] for k in ("AP", "AP50", "AP75")}
    return scores


def _remap_by_name(gt: dict, card: dict) -> dict:
    """The scenes' ground truth with the fine-tuned model's category ids for the same names."""
    ids = dict(
        zip(
            card["class_names"],
            card.get("category_ids") or range(1, len(card["class_names"]) + 1),
            strict=False,
        )
    )
    old_to_new = {c["id"]: ids[c["name"]] for c in gt["categories"]}
    gt["categories"] = [{**c, "id": old_to_new[c["id"]]} for c in gt["categories"]]
    gt["annotations"] = [
        {**a, "category_id": old_to_new[a["category_id"]]} for a in gt["annotations"]
    ]
    return gt


def _card_summary(weights: Path) -> dict:
    card = read_card(weights)
    return {
        "epochs": card.get("epochs"),
        "classes_added": card.get("fine_tuned_from", {}).get("classes_added"),
        "training_seconds": card.get("training", {}).get("seconds"),
        "dataset": card.get("dataset"),
    }


def _markdown(r: dict) -> str:
    def ap(scores: dict, key: str = "segm") -> str:
        value = scores[key]["AP"]
        return "n/a" if value is None else f"{value:.3f}"

    base = r["base"]["photos"]
    lines = [
        "# Fine-tuning `fashion` on a folder's corrections (benchmarks/finetune_loop.py)",
        "",
        f"Threads {r['threads']}; load average {r['load_average_start']:.1f} at the start, "
        f"{r['load_average_end']:.1f} at the end. Default trainer settings.",
        "",
        "| case | fine-tune (s) | segm AP before | segm AP after | bbox AP before | bbox AP after |",
        "|---|---|---|---|---|---|",
        f"| {r['photos']['annotated_images']} CCP photos -> 100 held-out CCP photos | {r['photos']['finetune_seconds']}"
        f" | {ap(base)} | {ap(r['photos']['after'])} | {ap(base, 'bbox')} | {ap(r['photos']['after'], 'bbox')} |",
        f"| {r['scenes']['annotated_scenes']} scenes (10 new classes) -> {r['scenes']['eval_scenes']} other scenes | "
        f"{r['scenes']['finetune_seconds']} | {ap(r['scenes']['base'])} | {ap(r['scenes']['after'])} | "
        f"{ap(r['scenes']['base'], 'bbox')} | {ap(r['scenes']['after'], 'bbox')} |",
        f"| same model, back on the 100 held-out CCP photos | | {ap(base)} | {ap(r['scenes']['after_photos'])} | "
        f"{ap(base, 'bbox')} | {ap(r['scenes']['after_photos'], 'bbox')} |",
        "",
        "Targets: "
        + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in r["targets"].items()),
        "",
        "Commands:",
        f"- `{r['photos']['command']}`",
        f"- `{r['scenes']['command']}`",
        "- then `fashionviewer predict DIR --model OUT/model.pt --min-score 0.001` and "
        "`fashionviewer evaluate --gt GT --pred OUT/predictions.json --iou segm|bbox`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark(main)
