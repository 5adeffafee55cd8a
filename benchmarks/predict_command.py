"""``fashionviewer predict`` timed end to end against the same command from another source tree.

    python benchmarks/predict_command.py --baseline-tree DIR [--folder resources/demo] [--rounds 3] [-- ARGS...]

A refactoring must not cost speed: each round runs ``python -m fashionviewer.predict FOLDER --out TMP
--no-cache ARGS`` once from ``--baseline-tree`` (e.g. ``git archive COMMIT | tar -x -C DIR``) and once
from this checkout, in alternating order, so machine load hits both alike. The model's own seconds
per image (the summary line's ``s/image``) and the whole command's wall time are compared as medians
and ratios (this tree / baseline); the two runs' ``predictions.json`` must be equal. Writes
``benchmarks/results/predict_command.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fashionviewer.core.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402


def run(tree: Path, folder: Path, extra: list[str], threads: int) -> tuple[float, float, list]:
    """(model s/image, wall s, results) of one predict command run from ``tree``."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
        command = [
            sys.executable,
            "-m",
            "fashionviewer.predict",
            str(folder),
            "--out",
            out,
            "--no-cache",
            "--threads",
            str(threads),
            *extra,
        ]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(
                f"error: {tree}: predict exited {done.returncode}: {done.stderr.strip()[-500:]}"
            )
        rate = re.search(r"([0-9.]+) s/image", done.stdout)
        if rate is None:
            raise SystemExit(f"error: {tree}: no s/image in {done.stdout.strip()!r}")
        return float(rate.group(1)), wall, json.loads((Path(out) / "predictions.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--baseline-tree",
        type=Path,
        required=True,
        help="a source tree of the version to compare with",
    )
    p.add_argument("--baseline-name", default="baseline", help="what to call it in the results")
    p.add_argument("--folder", type=Path, default=REPO / "resources" / "demo")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("extra", nargs="*", help="more predict arguments (after --)")
    args = p.parse_args()
    arms = {"baseline": args.baseline_tree.resolve(), "this tree": REPO}
    rates: dict[str, list[float]] = {arm: [] for arm in arms}
    walls: dict[str, list[float]] = {arm: [] for arm in arms}
    outputs: dict[str, list] = {}
    for round_ in range(args.rounds):
        order = list(arms) if round_ % 2 == 0 else list(reversed(arms))
        for arm in order:
            rate, wall, results = run(arms[arm], args.folder.resolve(), args.extra, args.threads)
            rates[arm].append(rate)
            walls[arm].append(wall)
            outputs[arm] = results
            print(f"round {round_ + 1} {arm}: {rate:.3f} s/image, {wall:.1f} s", file=sys.stderr)
    median = {arm: (statistics.median(rates[arm]), statistics.median(walls[arm])) for arm in arms}
    result = {
        "folder": str(args.folder),
        "extra": args.extra,
        "threads": args.threads,
        "rounds": args.rounds,
        "baseline": args.baseline_name,
        "s_per_image": rates,
        "wall_s": walls,
        "ratio_s_per_image": round(median["this tree"][0] / median["baseline"][0], 3),
        "ratio_wall": round(median["this tree"][1] / median["baseline"][1], 3),
        "same_predictions": outputs["baseline"] == outputs["this tree"],
        "records": [len(outputs["baseline"]), len(outputs["this tree"])],
        "differing_records": sum(
            a != b for a, b in zip(outputs["baseline"], outputs["this tree"], strict=False)
        ),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "predict_command.json", result)
    table = (
        f"# `fashionviewer predict` end to end: this tree vs {args.baseline_name}\n\n"
        f"`fashionviewer predict {args.folder} --out TMP --no-cache --threads {args.threads} "
        f"{' '.join(args.extra)}`, {args.rounds} rounds, the arms alternating.\n\n"
        "| arm | median s/image (model) | median wall s |\n|---|---|---|\n"
        f"| {args.baseline_name} | {median['baseline'][0]:.3f} | {median['baseline'][1]:.1f} |\n"
        f"| this tree | {median['this tree'][0]:.3f} | {median['this tree'][1]:.1f} |\n"
        f"| **ratio** | **{result['ratio_s_per_image']}×** | {result['ratio_wall']}× |\n\n"
        f"Same predictions.json: {result['same_predictions']} ({result['records'][1]} records, "
        f"{result['differing_records']} differing).\n\n"
        f"Measured by `python benchmarks/predict_command.py {' '.join(sys.argv[1:])}`.\n"
    )
    atomic_write_text(args.results / "predict_command.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
