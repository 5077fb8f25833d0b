"""Resuming a tracked run from a checkpoint gives the same record as an uninterrupted run (in-process crash; the
real SIGKILL scenarios are in scripts/fault_check.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset
from transformers import TrainerCallback

from hf_prune import HFPruner, PruneTrainer, TrainingRecord
from hf_prune.errors import RecordError
from hf_prune.scores import get_score
from hf_prune.trainer import last_complete_checkpoint


class Crash(TrainerCallback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt("simulated crash")


def make(tmp_path, name, optim="sgd", **kw):
    dataset, _, _ = vector_dataset(n=48)
    torch.manual_seed(0)
    args = quiet_args(tmp_path / name, num_train_epochs=3, save_strategy="steps", save_steps=4, optim=optim, **kw)
    return PruneTrainer(model=IdentityHead(), args=args, train_dataset=dataset)


def columns(record):
    out = {name: np.asarray(v) for name, v in record.occurrences.items()}
    out.update({f"step_{name}": np.asarray(v) for name, v in record.steps.items()})
    return out


@pytest.mark.parametrize("optim", ["sgd", "adamw_torch"])
@pytest.mark.parametrize("crash_at", [5, 9, 14])
def test_resume_gives_the_same_record(tmp_path, optim, crash_at):
    reference = make(tmp_path, "reference", optim)
    reference.train()
    crashed = make(tmp_path, "crashed", optim)
    crashed.add_callback(Crash(crash_at))
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    resumed = make(tmp_path, "crashed", optim)
    resumed.train(resume_from_checkpoint=True)
    expected, actual = columns(reference.record), columns(resumed.record)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for score in ("dual", "el2n", "forgetting"):
        np.testing.assert_allclose(get_score(score)(resumed.record).values, get_score(score)(reference.record).values,
                                   rtol=1e-6)


def test_incomplete_checkpoints_are_skipped(tmp_path):
    trainer = make(tmp_path, "run")
    trainer.train()
    out = tmp_path / "run"
    newest = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (newest / "trainer_state.json").unlink()  # as if the save had been killed before its last file
    chosen = last_complete_checkpoint(str(out))
    assert chosen is not None and chosen != str(newest)
    with pytest.raises(RecordError, match="is incomplete .*no trainer_state.json"):
        make(tmp_path, "run").train(resume_from_checkpoint=str(newest))


def test_nothing_to_resume(tmp_path):
    with pytest.raises(RecordError, match="No complete checkpoint"):
        make(tmp_path, "empty").train(resume_from_checkpoint=True)


def test_checkpoint_without_record_manifest(tmp_path):
    trainer = make(tmp_path, "run")
    trainer.train()
    checkpoint = max((tmp_path / "run").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (checkpoint / "hf_prune_record_rank0.json").unlink()
    with pytest.raises(RecordError, match="has no hf_prune record manifest"):
        make(tmp_path, "run").train(resume_from_checkpoint=str(checkpoint))
    # a resumed record whose files were deleted after the checkpoint is refused, not silently shortened
    shutil.rmtree(tmp_path / "run" / "prune_record")
    previous = max((tmp_path / "run").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]) - 1000 * (
        p == checkpoint))
    manifest = json.loads((previous / "hf_prune_record_rank0.json").read_text())
    assert manifest["occurrences"] > 0
    with pytest.raises(RecordError):
        make(tmp_path, "run").train(resume_from_checkpoint=str(previous))


class StartSecondRun(TrainerCallback):
    """At one step of a run, starts a second run on the same output dir (the 'two benchmark jobs' mistake)."""

    def __init__(self, second, at_step):
        self.second, self.at_step, self.error = second, at_step, None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            with pytest.raises(RecordError, match="Another training run .* is writing the record") as info:
                self.second.train()
            self.error = info.value


def test_a_second_run_on_a_record_being_written_is_refused_and_the_first_is_intact(tmp_path):
    reference = make(tmp_path, "reference")
    reference.train()
    first = make(tmp_path, "shared")
    guard = StartSecondRun(make(tmp_path, "shared"), at_step=5)
    first.add_callback(guard)
    first.train()
    assert guard.error is not None
    expected, actual = columns(reference.record), columns(first.record)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7, err_msg=key)
    assert not (tmp_path / "shared" / "prune_record.lock").exists()  # released: the next run may start
    make(tmp_path, "shared").train()


def test_lock_of_a_live_process_is_respected_and_of_a_dead_one_taken_over(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    lock = tmp_path / "run" / "prune_record.lock"
    lock.parent.mkdir()
    # A live process on this machine (the test runner's parent) holds the record.
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": 0}))
    with pytest.raises(RecordError, match=f"pid {os.getppid()}.*delete .*prune_record.lock"):
        make(tmp_path, "run").train()
    assert not (tmp_path / "run" / "prune_record").exists()  # refused before anything was written
    # A process that has exited (a killed run) left it: the new run takes it over and releases it at the end.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "started": 0}))
    trainer = make(tmp_path, "run")
    trainer.train()
    assert trainer.record.epochs_completed == 3 and not lock.exists()


def test_record_holding_rows_of_two_runs_is_refused(tmp_path):
    trainer = make(tmp_path, "run")
    trainer.train()
    column = tmp_path / "run" / "prune_record" / "rank-00000" / "occ_index.bin"
    data = column.read_bytes()
    column.write_bytes(data + data)  # what two runs appending to one record leave on disk
    with pytest.raises(RecordError, match=r"holds more rows on disk \(288 in occ_index.bin\) than it committed \(144\)"):
        TrainingRecord(tmp_path / "run" / "prune_record")


def test_resuming_from_another_runs_checkpoint_is_named(tmp_path, caplog):
    # A checkpoint names the record it was written for: resuming this run from it is quiet, resuming another run
    # from it (which mixes the two runs into one record) says so.
    other = make(tmp_path, "other")
    other.train()
    checkpoint = sorted((tmp_path / "other").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[0]
    with caplog.at_level("WARNING", logger="hf_prune"):
        make(tmp_path, "other").train(resume_from_checkpoint=str(checkpoint))
    assert "was written by the run recorded at" not in caplog.text
    ours = make(tmp_path, "ours")
    ours.train()
    with caplog.at_level("WARNING", logger="hf_prune"):
        make(tmp_path, "ours").train(resume_from_checkpoint=str(checkpoint))
    assert "was written by the run recorded at" in caplog.text and "resume from a checkpoint of this run" in caplog.text


def test_resuming_a_finished_run_is_a_no_op_that_keeps_its_record(tmp_path):
    """Re-running a finished script with `resume_from_checkpoint=True` (its last checkpoint is after the last step):
    nothing is trained, the record is left byte for byte, and the new trainer prunes from it (a plain Trainer makes
    this a no-op too; it raised "Training ran no recorded step")."""
    dataset, _, _ = vector_dataset(n=48)

    def trainer():
        torch.manual_seed(0)
        args = quiet_args(tmp_path / "run", num_train_epochs=2, save_strategy="epoch")
        return PruneTrainer(model=IdentityHead(), args=args, train_dataset=dataset)

    first = trainer()
    first.train()
    record_dir = Path(first.record_dir)
    before = {p: p.read_bytes() for p in sorted(record_dir.rglob("*")) if p.is_file()}
    again = trainer()
    again.train(resume_from_checkpoint=True)
    assert {p: p.read_bytes() for p in sorted(record_dir.rglob("*")) if p.is_file()} == before
    np.testing.assert_array_equal(HFPruner(again).select(0.5).kept, HFPruner(first).select(0.5).kept)
