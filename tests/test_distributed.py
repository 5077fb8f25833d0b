"""Two gloo processes record the same per-sample values as one process with the same global batch order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hf_prune import TrainingRecord
from hf_prune.influence.sweep import SweepConfig, sgd_influence_sweep
from hf_prune.scores.dynamics import steps_per_epoch


SCRIPT = Path(__file__).parent / "scripts" / "train_tiny.py"
pytestmark = pytest.mark.distributed


def run(out: Path, processes: int, batch: int, n: int, optim: str = "sgd") -> TrainingRecord:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        cmd = [sys.executable, str(SCRIPT)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--standalone",
               str(SCRIPT)]
    cmd += ["--output_dir", str(out), "--batch", str(batch), "--rows", str(n), "--optim", optim]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return TrainingRecord(out / "prune_record")


@pytest.mark.parametrize("optim", ["sgd", "adamw_torch"])
def test_two_processes_match_one(tmp_path, optim):
    single = run(tmp_path / "one", processes=1, batch=16, n=64, optim=optim)
    double = run(tmp_path / "two", processes=2, batch=8, n=64, optim=optim)
    assert double.meta["world_size"] == 2 and double.meta["table"]["directory"] == "merged"
    assert single.num_occurrences == double.num_occurrences == 128
    for column in ("index", "step", "epoch", "label"):
        np.testing.assert_array_equal(np.asarray(single.occurrences[column]), np.asarray(double.occurrences[column]))
    for column in ("loss", "weight", "logits", "logit_grad", "features"):
        np.testing.assert_allclose(
            np.asarray(single.occurrences[column]), np.asarray(double.occurrences[column]), rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(np.asarray(single.steps["lr"]), np.asarray(double.steps["lr"]))
    # Global batch 16 over 64 rows: 4 optimizer steps per epoch in both (what the late-row rule counts a subset by).
    assert steps_per_epoch(single) == steps_per_epoch(double) == 4.0
    if optim == "adamw_torch":
        np.testing.assert_allclose(
            np.asarray(single.steps["head_state"]), np.asarray(double.steps["head_state"]), rtol=1e-4, atol=1e-9
        )
    # The SGD-Influence vectors of the two runs agree to 1e-5 (relative).
    config = SweepConfig(sketch_size=None, query=False, precision="float64")
    one = sgd_influence_sweep(single, config).vectors
    two = sgd_influence_sweep(double, config).vectors
    assert np.linalg.norm(one - two) / np.linalg.norm(one) < 1e-5


def test_padding_duplicates_are_recorded_once_per_epoch(tmp_path):
    # 60 rows, 2 processes x 8: the last global batch is padded with 4 rows from the start of the epoch.
    record = run(tmp_path / "pad", processes=2, batch=8, n=60)
    index = np.asarray(record.occurrences["index"])
    epoch = np.asarray(record.occurrences["epoch"])
    for e in (0, 1):
        seen = index[epoch == e]
        assert len(seen) == 64  # the duplicates were trained on, so they are in the step record
        assert len(np.unique(seen)) == 60
    table = record.epoch_table("loss")
    assert table.shape == (2, 60) and np.isfinite(table).all()
    # The per-epoch value of a duplicated sample is its first presentation, not the padded repeat.
    steps = np.asarray(record.occurrences["step"])
    loss = np.asarray(record.occurrences["loss"])
    for e in (0, 1):
        rows = np.flatnonzero(epoch == e)
        first = {}
        for r in rows[np.argsort(steps[rows], kind="stable")]:
            first.setdefault(int(index[r]), float(loss[r]))
        np.testing.assert_allclose(table[e], [first[i] for i in range(60)], rtol=1e-6)
    weights_per_step = np.bincount(steps, weights=np.asarray(record.occurrences["weight"], dtype=np.float64))
    np.testing.assert_allclose(weights_per_step[np.unique(steps)], 1.0, rtol=1e-5)


def test_mip_selection_identical_across_ranks(tmp_path):
    script = Path(__file__).parent / "scripts" / "select_tiny.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = []
    for processes in (1, 2):
        out = tmp_path / f"kept{processes}.npy"
        cmd = [sys.executable, str(script), str(out)] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script), str(out)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(np.load(out))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert len(outputs[0]) == 140


def test_a_held_record_stops_every_process(tmp_path):
    # The main process finds the record locked by a live run (this test process); the other process must stop too,
    # not wait forever at the next barrier.
    import json
    import socket

    out = tmp_path / "locked"
    out.mkdir()
    (out / "prune_record.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(SCRIPT),
           "--output_dir", str(out), "--batch", "8", "--rows", "32"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode != 0
    assert done.stderr.count("Another training run") >= 2, done.stderr[-3000:]  # raised on both ranks
    assert not (out / "prune_record").exists()
