"""Shards of a folder run and their merge: ``fashionviewer predict --shard I/N`` (or torchrun, one
shard per process) writes ``*.shard-I-of-N.*`` files; :func:`merge` joins them into what one
unsharded run writes (image ids are global, so nothing is renumbered)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fashionviewer.core.base.atomic import atomic_write_json
from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.prediction_files import load_coco_results
from fashionviewer.core.data.predictions import ImagePrediction
from fashionviewer.core.runs.export import export_folder, provenance
from fashionviewer.core.runs.folder_run import INDEX_FILE, RESULTS_FILE, RUN_FILE, Shard, write_list
from fashionviewer.core.runs.step import first_line


@dataclass
class MergeResult:
    shards: int
    images: int
    instances: int
    skipped: list[str]
    results: Path

    def line(self) -> str:
        skipped = f"; {len(self.skipped)} file(s) were skipped" if self.skipped else ""
        return (
            f"merged {self.shards} shard(s): {self.images} image(s), {self.instances} instance(s)"
            f"{skipped}; wrote {self.results}"
        )


def merge(out: Path) -> MergeResult:
    """Join ``out``'s shard results into one COCO results file, images index and run record.

    Image ids are global positions in the folder's sorted listing, so they need no renumbering:
    the merged files equal what one unsharded run writes.
    """
    if not out.is_dir():
        raise FashionViewerError(f"--merge {out}: not a folder")
    metas: dict[int, dict[str, Any]] = {}
    counts: set[int] = set()
    for path in sorted(out.glob("run.shard-*-of-*.json")):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            index, count = (int(v) for v in meta["shard"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FashionViewerError(
                f"{path}: unreadable shard record ({first_line(exc)})"
            ) from exc
        counts.add(count)
        metas[index] = meta | {"_path": path}
    if not metas:
        raise FashionViewerError(
            f"{out}: no shard results to merge (run.shard-I-of-N.json); run "
            f"`fashionviewer predict FOLDER --out {out} --shard I/N` for every I first"
        )
    if len(counts) > 1:
        splits = ", ".join(f"N={n}" for n in sorted(counts))
        raise FashionViewerError(
            f"{out}: shard results of different splits ({splits}); "
            "delete the stale run.shard-*.json files"
        )
    count = counts.pop()
    missing = [i for i in range(count) if i not in metas]
    if missing:
        names = ", ".join(Shard(i, count).name(RUN_FILE) for i in missing)
        raise FashionViewerError(
            f"{out}: shard(s) {', '.join(f'{i}/{count}' for i in missing)} not finished "
            f"(no {names})"
        )
    first = metas[0]
    for meta in metas.values():
        for key in ("model_key", "folder", "min_score", "limit"):
            if meta.get(key) != first.get(key):
                raise FashionViewerError(
                    f"{meta['_path']}: {key} differs from shard 0's ({meta.get(key)!r} vs "
                    f"{first.get(key)!r}); rerun that shard with the same arguments"
                )

    records: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for i in range(count):
        meta = metas[i]
        records += load_coco_results(out / meta["results"])
        index += _load_index(out / meta["index"])
    index.sort(key=lambda e: e["image_id"])
    records.sort(key=lambda r: r["image_id"])  # stable: each image keeps its score order
    ids = [e["image_id"] for e in index]
    if len(set(ids)) != len(ids):
        raise FashionViewerError(
            f"{out}: the shards overlap (an image id appears twice); rerun them with the same N"
        )

    results_path = write_list(out / RESULTS_FILE, records)
    write_list(out / INDEX_FILE, index)
    skipped = [reason for i in range(count) for reason in metas[i].get("skipped", [])]
    merged = {
        k: v
        for k, v in first.items()
        if k not in ("_path", "shard", "results", "index", "seconds", "device")
    }
    merged.update(
        shards=count,
        results=RESULTS_FILE,
        index=INDEX_FILE,
        skipped=skipped,
        devices=sorted({str(metas[i].get("device")) for i in range(count)}),
        seconds=max(float(metas[i].get("seconds", 0)) for i in range(count)),
        **{
            key: sum(int(metas[i].get(key, 0)) for i in range(count))
            for key in ("images", "predicted", "from_cache", "resumed", "model_runs", "instances")
        },
    )
    if "coco" in first.get("export", []):
        info = provenance(
            model=first.get("model", ""),
            weights=first.get("weights"),
            weights_sha256=first.get("weights_sha256"),
            min_score=float(first.get("min_score", 0)),
            shards=count,
        )
        cats = [
            c
            for c in first.get("categories") or []
            if isinstance(c, dict) and "id" in c and "name" in c
        ]
        ids, names = (
            ([int(c["id"]) for c in cats], [str(c["name"]) for c in cats]) if cats else (None, None)
        )
        export_folder(
            _grouped(index, records, Path(first["folder"]), ids),
            out,
            ("coco",),
            float(first.get("min_score", 0)),
            None,
            info=info,
            root=first["folder"],
            category_ids=ids,
            class_names=names,
        )
    atomic_write_json(out / RUN_FILE, merged)
    return MergeResult(count, int(merged["predicted"]), len(records), skipped, results_path)


def _load_index(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FashionViewerError(f"{path}: unreadable images index ({first_line(exc)})") from exc
    if not isinstance(data, list) or not all(isinstance(e, dict) and "image_id" in e for e in data):
        raise FashionViewerError(
            f"{path}: not an images index (a list of {{image_id, file_name, width, height}})"
        )
    return data


def _grouped(
    index: list[dict[str, Any]],
    records: list[dict[str, Any]],
    folder: Path,
    category_ids: list[int] | None = None,
) -> Iterator[tuple[ImagePrediction, None, Path]]:
    """(prediction, no image, source path) per indexed image, from sorted COCO results records."""
    from fashionviewer.core.data.prediction_files import from_coco_results

    by_id: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["image_id"], []).append(record)
    for entry in index:
        found = from_coco_results(by_id.get(entry["image_id"], []), category_ids=category_ids)
        prediction = ImagePrediction(
            entry["file_name"],
            int(entry["width"]),
            int(entry["height"]),
            found[0].instances if found else [],
            image_id=entry["image_id"],
        )
        yield prediction, None, folder / entry["file_name"]


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when started by torchrun with more than one process."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world, int(os.environ.get("LOCAL_RANK", rank))) if world > 1 else None


def device_for(name: str, local_rank: int | None) -> str:
    """Under torchrun each process takes GPU LOCAL_RANK ('auto'/'cuda'); an explicit cuda:N is kept."""
    if local_rank is None or name not in ("auto", "cuda"):
        return name
    import torch

    return (
        f"cuda:{local_rank}" if torch.cuda.is_available() else ("cpu" if name == "auto" else name)
    )


def merge_under_torchrun(out: Path, torchrun: tuple[int, int, int]) -> MergeResult | None:
    """Wait for every rank to finish its shard, then rank 0 merges (and returns what it merged)."""
    import datetime as dt

    import torch.distributed as dist

    rank, merged = torchrun[0], None
    # gloo even on GPUs: only a barrier goes through it. Shards may finish hours apart.
    dist.init_process_group("gloo", init_method="env://", timeout=dt.timedelta(hours=48))
    try:
        dist.barrier()
        if rank == 0:
            merged = merge(out)
        # the others wait so that torchrun sees the job end only when the merge is written
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return merged
