"""A cancel that reaches one torchrun rank stops every rank at the same step (trainers.common.agreed_loss):
rank 0 reports a clean cancel instead of waiting in the gradient all-reduce for a rank that has left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fashionviewer.core.base.events import parse_event_line

REPO = Path(__file__).resolve().parents[2]

# trainer -> options for a long run on 4 CCP photos that starts stepping within seconds
LONG_RUNS = {
    "interactive": ["--steps-per-epoch", "500", "--batch-size", "2", "--val-objects", "0"],
    "parsing": [
        "--epochs", "500", "--batch-size", "1", "--val-size", "2",
        "--image-width", "64", "--crop-height", "64",
    ],
}  # fmt: skip


def _rank_pids(launcher: subprocess.Popen) -> dict[int, int]:
    """RANK -> pid of the launcher's worker processes (read from their environment)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    ranks = {}
    for pid in map(int, children):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = [item[5:] for item in environ if item.startswith(b"RANK=")]
        if rank:
            ranks[int(rank[0])] = pid
    return ranks


@pytest.mark.slow
@pytest.mark.needs_ccp
@pytest.mark.parametrize("trainer", sorted(LONG_RUNS))
def test_a_cancel_seen_by_one_torchrun_rank_stops_both(ccp_root, tmp_path, trainer) -> None:
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs /proc to find the worker processes")
    events_file = tmp_path / "ddp.jsonl"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", f"trainers.{trainer}", "--data-path", str(ccp_root), "--out", str(tmp_path / "ddp"),
        "--limit", "4", "--events", str(events_file), *LONG_RUNS[trainer],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launcher = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not (events_file.is_file() and '"step"' in events_file.read_text()):
            assert launcher.poll() is None and time.monotonic() < deadline, "no step event"
            time.sleep(0.5)
        os.kill(_rank_pids(launcher)[1], signal.SIGTERM)
        _out, err = launcher.communicate(timeout=120)  # a rank left waiting would time out here
    finally:
        if launcher.poll() is None:
            launcher.kill()
    events = [parse_event_line(line) for line in events_file.read_text().splitlines()]
    assert events[-1]["event"] == "end" and events[-1]["status"] == "cancelled", err[-2000:]
    steps = [(e["epoch"], e["step"]) for e in events if e["event"] == "step"]
    assert steps == sorted(set(steps)) and len(steps) < 500  # every step once, and it stopped early
