"""Kill things for real and check that nothing is lost: training, checkpoint saves, selection, saving, pushing.

    python scripts/fault_check.py            # about 4 minutes on 2 CPU cores

Scenarios (each a subprocess killed with SIGKILL at a chosen moment, then resumed or retried):

1–3. tracked training killed mid-epoch (three different moments), resumed with `resume_from_checkpoint=True`;
4.   tracked training killed in the middle of a checkpoint save (the checkpoint folder is left incomplete), resumed;
5.   a bucketed MIP selection killed midway, run again;
6.   `HFPruner.save` killed while writing the arrays of a result that replaces an earlier one;
7.   a Hub push killed after the pruned split landed but before the scores config (loopback fake Hub), retried;
8.   a record column corrupted in place after training (256 bytes zeroed): it must be refused, not read;
9.   a saved result tampered with (duplicated, unsorted kept rows; a file entry outside its folder): refused.

"identical" means: the resumed record equals an uninterrupted run with the same seed (every recorded column, to
1e-6) and so do the scores (`dual`, `sgd_influence` vectors); the re-run selection equals the uninterrupted one;
the saved result is the old or the new one, never a mixture; the retried push holds the expected rows; a corrupted
record or tampered result is refused with an error naming it. "lost" counts scenarios where anything written before
the kill became unreadable, or where damaged data would have been used silently. The last line is

    scenarios=<n> identical=<n> lost=<n>
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_PRUNE_DISABLE_PROGRESS_BARS", "1")  # the children inherit it: no sweep bars in the log
SCRIPT = Path(__file__).resolve()


# ---------------------------------------------------------------------- child processes
def child_train(out: str, resume: bool, slow_save: bool) -> None:
    import datasets
    import torch
    from torch import nn
    from transformers import PrinterCallback, Trainer, TrainerCallback

    from hf_prune import PruneArguments, PruneTrainer, logging

    logging.set_verbosity_error()
    datasets.disable_progress_bars()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 8)).astype(np.float32)
    y = (x[:, :3].argmax(1) + (rng.random(1200) < 0.2)) % 3
    data = datasets.Dataset.from_dict({"x": x.tolist(), "label": y.tolist()})

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
            self.classifier = nn.Linear(16, 3)

        def forward(self, x, labels=None):
            logits = self.classifier(self.body(x))
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}

    class Slow(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            # Publish progress so that the parent kills at a chosen step; the sleep widens the window.
            Path(out, "STEP").write_text(str(state.global_step))
            time.sleep(0.02)

    if slow_save:
        original = Trainer._save_optimizer_and_scheduler

        def slow(self, output_dir):
            original(self, output_dir)
            if output_dir.endswith("checkpoint-90"):
                Path(out, "SAVING").write_text(output_dir)
                time.sleep(30)  # the parent kills us here: model and optimizer written, trainer_state.json not yet

        Trainer._save_optimizer_and_scheduler = slow
    torch.manual_seed(0)
    args = PruneArguments(output_dir=out, num_train_epochs=3, per_device_train_batch_size=16, learning_rate=0.05,
                          optim="sgd", optim_args="momentum=0.9", save_strategy="steps", save_steps=30,
                          report_to=[], logging_strategy="no", disable_tqdm=True, seed=0, data_seed=0,
                          dataloader_pin_memory=False, use_cpu=True, max_grad_norm=0.0)
    trainer = PruneTrainer(model=Net(), args=args, train_dataset=data)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(Slow())
    trainer.train(resume_from_checkpoint=True if resume else None)
    Path(out, "DONE").write_text("ok")


def child_select(record: str, out: str) -> None:
    from hf_prune.selection import Budget, SelectionInputs, get_selector
    from hf_prune.tracking.record import TrainingRecord

    rec = TrainingRecord(record)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(rec.num_samples, 24))
    inputs = SelectionInputs(labels=rec.labels, vectors=vectors, seed=3)
    out_sel = get_selector("mip", bucket_size=150, solve="always", node_limit=30)(inputs, Budget(n_keep=500))
    np.save(out, out_sel.kept)


def child_save(record: str, target: str, ratio: float, slow: bool) -> None:
    from hf_prune import HFPruner
    from hf_prune.tracking.record import TrainingRecord

    if slow:
        original = np.save
        calls = {"n": 0}

        def slow_save(path, array, *args, **kwargs):
            calls["n"] += 1
            original(path, array, *args, **kwargs)
            if calls["n"] == 2:
                Path(target + ".SAVING").write_text("x")
                time.sleep(30)

        np.save = slow_save
    labels = TrainingRecord(record).labels
    import datasets

    dataset = datasets.Dataset.from_dict({"label": labels.tolist()})
    pruner = HFPruner(record=record, dataset=dataset, method="dual")
    pruner.select(ratio)
    pruner.save(target, include_dataset=False)


def child_push(record: str, local: str, endpoint: str) -> None:
    import datasets

    from hf_prune import HFPruner
    from hf_prune.tracking.record import TrainingRecord

    os.environ["HF_ENDPOINT"] = endpoint
    labels = TrainingRecord(record).labels
    dataset = datasets.Dataset.from_dict({"label": labels.tolist(), "row": list(range(len(labels)))})
    HFPruner(record=record, dataset=dataset, method="dual").push_to_hub("tester/fault", 0.5, local_dir=local)


# ---------------------------------------------------------------------- parent helpers
def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), "--child", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_child(*args: str, env: dict | None = None) -> None:
    proc = spawn(*args, env=env)
    _, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{err.decode()[-3000:]}")


def kill_after(proc: subprocess.Popen, seconds: float | None = None, marker: Path | None = None,
               step_file: Path | None = None, step: int | None = None) -> None:
    deadline = time.time() + 300
    if marker is not None:
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    elif step_file is not None:
        def current() -> int:
            try:
                return int(step_file.read_text() or 0)
            except (OSError, ValueError):
                return 0

        while current() < step and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(seconds)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def record_columns(path: str) -> dict[str, np.ndarray]:
    from hf_prune.tracking.record import TrainingRecord

    rec = TrainingRecord(path)
    columns = {name: np.asarray(values) for name, values in rec.occurrences.items()}
    columns.update({f"step_{name}": np.asarray(values) for name, values in rec.steps.items()})
    return columns


def scores_of(path: str) -> dict[str, np.ndarray]:
    from hf_prune.influence.sweep import SweepConfig, sgd_influence_sweep
    from hf_prune.scores import get_score
    from hf_prune.tracking.record import TrainingRecord

    rec = TrainingRecord(path)
    return {"dual": get_score("dual")(rec).values,
            "sgd_influence": sgd_influence_sweep(rec, SweepConfig(sketch_size=None, precision="float64")).vectors}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], tol: float = 1e-6) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = np.asarray(a[key], dtype=np.float64), np.asarray(b[key], dtype=np.float64)
        if x.shape != y.shape or not np.allclose(x, y, rtol=tol, atol=tol):
            print(f"    differs: {key} {x.shape} vs {y.shape}", flush=True)
            return False
    return True


def resume_and_compare(out: Path, ref_record, ref_scores) -> tuple[bool, bool]:
    """Resume the killed run in `out`; (identical to the reference record and scores, anything lost)."""
    try:
        run_child("train", str(out), "resume")
        return same(record_columns(str(out / "prune_record")), ref_record) and same(
            scores_of(str(out / "prune_record")), ref_scores), False
    except Exception as err:  # noqa: BLE001
        print(f"    resume failed: {err}", flush=True)
        return False, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    cli = parser.parse_args()
    if cli.child:
        kind, *rest = cli.child
        if kind == "train":
            child_train(rest[0], resume="resume" in rest, slow_save="slow_save" in rest)
        elif kind == "select":
            child_select(rest[0], rest[1])
        elif kind == "save":
            child_save(rest[0], rest[1], float(rest[2]), slow="slow" in rest)
        elif kind == "push":
            child_push(rest[0], rest[1], rest[2])
        return

    work = Path(tempfile.mkdtemp(prefix="hf_prune_fault_"))
    results: list[tuple[str, bool, bool]] = []  # (scenario, identical, lost)
    reference = work / "reference"
    start = time.time()
    run_child("train", str(reference))
    ref_record, ref_scores = record_columns(str(reference / "prune_record")), scores_of(str(reference / "prune_record"))
    print(f"reference run: {ref_record['index'].shape[0]} recorded sample-steps ({time.time() - start:.0f} s)",
          flush=True)

    # 1-3: killed mid-epoch at three moments (75 steps per epoch, a checkpoint every 30 steps), resumed.
    for n, step in enumerate((45, 100, 170), start=1):
        out = work / f"kill_{n}"
        kill_after(spawn("train", str(out)), step_file=out / "STEP", step=step)
        checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
        identical, lost = resume_and_compare(out, ref_record, ref_scores)
        results.append((f"kill mid-epoch at step {step} (checkpoints {checkpoints})", identical, lost))

    # 4: killed while writing a checkpoint.
    out = work / "kill_save"
    kill_after(spawn("train", str(out), "slow_save"), marker=out / "SAVING")
    incomplete = Path((out / "SAVING").read_text()) if (out / "SAVING").exists() else None
    identical, lost = resume_and_compare(out, ref_record, ref_scores)
    results.append((f"kill during checkpoint save ({incomplete.name if incomplete else '?'} left incomplete)",
                    identical, lost))

    # 5: selection killed midway, run again.
    ref_sel = work / "selection_ref.npy"
    run_child("select", str(reference / "prune_record"), str(ref_sel))
    again = work / "selection_again.npy"
    kill_after(spawn("select", str(reference / "prune_record"), str(again)), seconds=2.0)
    killed_early = not again.exists()
    run_child("select", str(reference / "prune_record"), str(again))
    results.append((f"selection killed midway (killed before finishing: {killed_early}), re-run",
                    bool(np.array_equal(np.load(ref_sel), np.load(again))), False))

    # 6: a result save killed while writing its arrays (it replaces an earlier result).
    target = work / "saved"
    run_child("save", str(reference / "prune_record"), str(target), "0.3")
    before = json.loads((target / "result.json").read_text())["ratio"]
    kill_after(spawn("save", str(reference / "prune_record"), str(target), "0.6", "slow"),
               marker=Path(str(target) + ".SAVING"))
    from hf_prune import PruneResult

    try:
        survived = PruneResult.load(str(target))
        lost = False
        consistent = survived.ratio == before and len(survived.kept) == len(survived.labels) - round(0.3 * len(
            survived.labels))
    except Exception as err:  # noqa: BLE001
        print(f"    saved result unreadable after the kill: {err}", flush=True)
        lost, consistent = True, False
    run_child("save", str(reference / "prune_record"), str(target), "0.6")
    consistent = consistent and PruneResult.load(str(target)).ratio == 0.6
    for leftover in work.glob(".saved.tmp-*"):
        shutil.rmtree(leftover)
    results.append(("result save killed mid-write (old result intact, then replaced)", consistent, lost))

    # 7: push killed after the pruned split, before the scores config; retried.
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_hub import FakeHub

    hub = FakeHub()
    landed = threading.Event()
    local = work / "push_local"

    def hang_after_data(method, path):
        repo = hub.repos.get("tester/fault")
        if repo is not None and any(f.startswith("data/") for f in repo.files):
            landed.set()
            return True
        return False

    hub.fail_paths(lambda method, path: method == "POST" and "/commit/" in path and hang_after_data(method, path),
                   status=None)
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fault_token_0000", "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(work / "hf_home"), "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
    proc = spawn("push", str(reference / "prune_record"), str(local), hub.url, env=env)
    while not landed.is_set() and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    import datasets

    try:
        local_rows = len(datasets.load_from_disk(str(local / "pruned")))
        lost = False
    except Exception:  # noqa: BLE001
        local_rows, lost = -1, True
    hub.clear_failures()
    run_child("push", str(reference / "prune_record"), str(local), hub.url, env=env)
    files = hub.repos["tester/fault"].files
    pushed = any(f.startswith("scores/") for f in files) and any(f.startswith("data/") for f in files)
    results.append((f"push killed after the pruned split (local copy {local_rows} rows), retried",
                    pushed and local_rows == 600, lost))

    # 8: a record column corrupted in place after training (256 bytes zeroed mid-file): refused, never read as is.
    corrupt = work / "corrupt_record"
    shutil.copytree(reference / "prune_record", corrupt)
    column = corrupt / "rank-00000" / "occ_logits.bin"
    if not column.is_file():  # a multi-process record keeps its merged table elsewhere
        column = next(corrupt.rglob("occ_logits.bin"))
    data = bytearray(column.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 256] = bytes(256)
    column.write_bytes(bytes(data))
    from hf_prune.errors import RecordError, ResultFormatError

    try:
        scores_of(str(corrupt))
        refused, message = False, "read without an error"
    except RecordError as err:
        refused, message = "occ_logits" in str(err), str(err).split(":")[0]
    # Nothing lost: the untouched record still gives the reference scores.
    intact = same(scores_of(str(reference / "prune_record")), ref_scores)
    results.append((f"record column corrupted in place ({message})", refused and intact, not intact))

    # 9: a saved result tampered with (kept rows duplicated and out of order, a files entry pointing outside): refused.
    tampered = work / "tampered"

    def duplicate_kept_rows() -> None:
        kept = np.load(tampered / "arrays" / "kept.npy")
        np.save(tampered / "arrays" / "kept.npy", np.concatenate([kept[::-1][:-1], kept[:1], kept[:1]]))

    def point_outside() -> None:
        meta = json.loads((tampered / "result.json").read_text())
        meta["files"]["labels"] = "../../reference/prune_record/labels.bin"
        (tampered / "result.json").write_text(json.dumps(meta))

    caught = []
    for tamper in (duplicate_kept_rows, point_outside):
        run_child("save", str(reference / "prune_record"), str(tampered), "0.5")
        tamper()
        try:
            PruneResult.load(str(tampered))
            caught.append(False)
        except ResultFormatError:
            caught.append(True)
    run_child("save", str(reference / "prune_record"), str(tampered), "0.5")
    restored = PruneResult.load(str(tampered))
    results.append((f"saved result tampered with (duplicated kept rows refused: {caught[0]}, a file outside the "
                    f"folder refused: {caught[1]}), saved again", all(caught) and restored.ratio == 0.5,
                    not restored.ratio == 0.5))

    for name, identical, lost in results:
        print(f"  {'identical' if identical else 'DIFFERENT'}{'  LOST' if lost else ''}  {name}", flush=True)
    if not cli.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"scenarios={len(results)} identical={sum(r[1] for r in results)} lost={sum(r[2] for r in results)}")


if __name__ == "__main__":
    main()
