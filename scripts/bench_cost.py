"""What the default's subsets cost to score, by scoring path, and what accuracy each path's subsets train to.

    python scripts/bench_cost.py                                   # full run (about 4 h on one core; resumable)
    python scripts/bench_cost.py --tasks fmnist & python scripts/bench_cost.py --tasks rotten_tomatoes fmnist5k
                                                                   # the same on two cores (~3 h): one list per process
    python scripts/bench_cost.py --smoke --out /tmp/cost           # CI: tiny task, 1 seed, 1 ratio, cheap paths
    python scripts/bench_cost.py --report-only                     # rewrite cost.md / cost.png from cost.json

Issue 27, item 4. The default policy (`HFPruner(...)` without `method` or `selector`: `dual` scores, `dual_beta`
draw, a new draw per seed as in `scripts/benchmark.py`) reads a record of training dynamics. This script measures,
for every task, what that record costs along seven paths, and how the subsets it yields train:

* `full record`: a `PruneTrainer` scoring run of the task's whole recipe (eval set: the task's `validation` rows,
  where it has them), then the score;
* `first 1 epoch`, `first 2 epochs`: the same run with `PruneArguments(score_epochs=E)`, which keeps the recipe's
  `num_train_epochs` (and so its learning-rate schedule) but stops training after `E` epochs (DUAL's "first epochs
  of the real schedule"); skipped where the recipe has no more than `E` epochs (it would be the full record);
  `--paths "first E epochs"` runs any other `E` (the short-record rules' confirmation, `results/short_record/`);
* `knn 10 %`: `HFPruner(trainer, extrapolate="knn", extrapolate_fraction=0.1)` on an untrained `PruneTrainer` of
  the recipe: a fresh model trained on a seeded 10 % of the rows, scored there, every row embedded by that model,
  the other rows' scores predicted by kNN (`hf_prune.extrapolation`). The extrapolation is seeded by the pruner's
  seed, so every seed trains its own subset model: the spread over seeds covers the subset draw, the subset run
  and the selection draw. Its cost is that of the first seed's call (wall-clock and CPU measured around
  `compute_score()`; the library's own timing, `info["extrapolation"]`, is stored beside it);
* `proxy`: selection via proxy (Coleman et al., ICLR 2020, arXiv 1906.11829): a `PruneTrainer` scoring run of a
  smaller, cheaper model on the same rows, whose record the default reads; the subsets then train the task's own
  model. The proxy was fixed before its first row ran: for the small CNN, the same network at a quarter of its
  widths (conv8-conv16-fc32) trained with the task's recipe for half its epochs (rounded up, at least 2, the
  schedule spanning them); for the fine-tuned MiniLM, a linear probe on the frozen backbone's sentence embeddings
  (mean pooling, normalised; `benchmark.trec_probe_task`'s recipe: SGD momentum 0.9, lr 0.5, cosine, weight decay
  1e-4, batch 32, 20 epochs). The cost counts the embedding pass over the training and eval rows;
* `final checkpoint`: the recipe trained with a plain `transformers.Trainer` (no tracking, seed 0), then
  `HFPruner.from_checkpoints([model], train, eval_dataset=validation)`: a one-epoch record of the final model's
  predictions. The user already has that model, so the cost is the forward passes (and the score) only;
* `last 2 checkpoints`: the same with two models of that run, after its second-to-last and its last epoch (the plain
  run saves the earlier one; a `Trainer` saving every epoch leaves both): a two-epoch record whose split-half
  agreement the default reports but does not trust (every prediction is post-training), so it keeps a stratified
  random subset, as from one checkpoint.

plus `random` (a class-stratified random subset, a new draw per seed) as the reference. The plain training run is
also the cost unit, "one full training run": every path's scoring cost is given as a fraction of its wall-clock and
CPU seconds (`time.perf_counter`; user + system time of this process and its children, `resource.getrusage`),
measured in the same process, one after another, before any retraining. CPU time is the steadier of the two on a
shared machine; torch runs on `--threads` threads (default `OMP_NUM_THREADS`, else 1), since with several threads
on a busy machine OpenMP's spin-waiting inflates CPU time unevenly.

For every (task, path, ratio, seed), the subset is retrained under the benchmark's pinned protocol
(`hf_prune.evaluation.retrain_and_evaluate`: a fresh model, the task's recipe and epochs, training seed = selection
seed) and tested on the task's test split. The break-even of a (task, path, ratio) is
`scoring seconds / (full training seconds − subset training seconds)`, wall-clock, the subset training time being the
mean of that cell's retrains: how many trainings on the pruned set repay the scoring (`never` when a subset run is
not faster than a full one).

Outputs, in `--out` (default `benchmarks/results`): `cost.json` (every row, every cost, per-task metadata; re-read
before every write, so parallel processes on other tasks can share it), `cost.md` (one table per task: path, cost
fraction wall / CPU, accuracy mean ± sample std (n) per ratio, full record − path in points, the one-sided Welch
p-value of "path below random" (`scipy.stats.ttest_ind(path, random, equal_var=False, alternative="less")`), the
break-even) and `cost.png` (accuracy against CPU cost fraction, one panel per task, one marker per path).

The run resumes: finished rows and measured costs are read back from `cost.json`; records, the final model and the
subsets stay in `--work` (default `runs/bench_cost`). A record lost from `--work` is made and measured again (the
earlier measurement is kept under `previous`), and subsets selected from the lost record are selected again.

The last line is `scoring_cost=<fraction> worst_delta_vs_full_record=<points> ratios=<r1,r2,...>`: the CPU cost
fraction of the cheapest path whose subsets are, at every ratio of the `--reference-task` (default `fmnist`, the
60k set), no more than the full-record default's standard deviation over seeds below its mean (`none` if no path
qualifies or the task has no rows), and that path's largest (full record − path) mean difference in points over the
ratios and every task in `cost.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed


sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark, imported as when it runs

import benchmark  # noqa: E402
from benchmark import REPO, Task, accuracy_text, make_task, method_options, prune_args, summarise  # noqa: E402

from hf_prune import HFPruner, PruneTrainer, logging  # noqa: E402
from hf_prune.errors import HfPruneError  # noqa: E402
from hf_prune.evaluation import compute_accuracy, retrain_and_evaluate  # noqa: E402


FULL_RECORD = "full record"
KNN = "knn 10 %"
CHECKPOINT = "final checkpoint"
CHECKPOINTS = "last 2 checkpoints"
PROXY = "proxy"
RANDOM = "random"
#: The cost unit: one training run of the task's recipe with a plain `transformers.Trainer` (stored with the costs).
TRAINING = "one full training run"
PATHS = [FULL_RECORD, "first 1 epoch", "first 2 epochs", PROXY, KNN, CHECKPOINT, CHECKPOINTS, RANDOM]
SMOKE_PATHS = [FULL_RECORD, "first 1 epoch", PROXY, KNN, CHECKPOINT, CHECKPOINTS, RANDOM]
ABOUT = ("scripts/bench_cost.py (issue 27, item 4; protocol in its docstring): the default's subsets by scoring path. "
         "rows: test accuracy of the subset retrained per (task, path, ratio, seed); costs: seconds (wall, CPU) of "
         "each path's scoring and of one full training run with a plain Trainer, per task.")
#: Stored with every cached selection of the default's paths: a selection made under an earlier rule of the library's
#: default (same options, other behaviour) is stale. 2: unmeasurable reliability means trust 0, and extrapolated
#: scores are trusted at their leave-one-out kNN fit; 3: a checkpoint record's reliability is not measurable either
#: (2026-12-04; the rows of rules 1 and 2 that differ are in `archive/`); 4: the trust gate of C8 (the rows of rule 3,
#: C1's, are in `archive/cost_rule3_c1.json`); 5: a short record of at most 100 optimizer steps is not followed
#: (benchmarks/predeclared/2026-12-05_short_record.md; it changes the `first 2 epochs` rows of fmnist5k and
#: rotten_tomatoes only, whose rule-4 rows are in `archive/cost_rule4_short.json`); 6: nor one covering less than a third
#: of the schedule (R6, same file; no row of `cost.json` changes: 60k's 2 of 5 epochs is followed under both rules; the
#: rule-5 rows of `short_record/` on fmnist_lt, fmnist_adamw and trec_probe are what following their records gave).
DEFAULT_RULE = 6
#: What each path's scoring cost counts (the table's second column).
COUNTED = {
    FULL_RECORD: "PruneTrainer run of the whole recipe (eval set tracked) + score",
    KNN: "subset model on 10 % + embedding pass + kNN (first seed's call)",
    CHECKPOINT: "forward passes only (the checkpoint is the user's own training run) + score",
    CHECKPOINTS: "forward passes of 2 checkpoints (the user's own run's last two epochs) + score",
    PROXY: "PruneTrainer run of the proxy model (text: the embedding pass included) + score",
    RANDOM: "nothing",
}


def ordered_paths(names: Any) -> list[str]:
    """`names` in the report's order: `PATHS`, with further `first E epochs` paths (`--paths "first 4 epochs"`)
    after `first 2 epochs`, by `E`."""
    names = set(names)
    extra = sorted((p for p in names if p not in PATHS and score_epochs_of(p)), key=score_epochs_of)
    return [p for p in PATHS[:3] + extra + PATHS[3:] if p in names]


def measured_paths(results: CostResults) -> list[str]:
    """`PATHS` and every further path with rows in `results`, in the report's order."""
    return ordered_paths({*PATHS, *(r["path"] for r in results.rows)})


def path_argument(value: str) -> str:
    """A `--paths` value: one of `PATHS`, or `first E epochs` for any `E`."""
    if value in PATHS or score_epochs_of(value):
        return value
    raise argparse.ArgumentTypeError(f"unknown path {value!r}: one of {PATHS}, or 'first E epochs'")


def score_epochs_of(path: str) -> int | None:
    """`E` of a `first E epoch(s)` path, else None."""
    match = re.fullmatch(r"first (\d+) epochs?", path)
    return int(match.group(1)) if match else None


def counted(path: str) -> str:
    epochs = score_epochs_of(path)
    return f"PruneTrainer run stopped after {epochs} epoch{'s' if epochs > 1 else ''} + score" if epochs else COUNTED[path]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its (waited-for) children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Stopwatch:
    """Wall-clock and CPU seconds of a `with` block."""

    wall: float
    cpu: float

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = cpu_seconds() - self._start[1]


class CostResults:
    """Rows, costs and per-task metadata in one JSON file, written after every addition (resumable).

    Every write re-reads the file first and keeps what another process wrote meanwhile (as `benchmark.Results`
    does): rows by (task, path, ratio, seed), costs and metadata by task and path, this process's own entries winning.
    """

    def __init__(self, path: Path):
        self.path = path
        stored = self._read()
        self.rows: list[dict[str, Any]] = stored.get("rows", [])
        self.costs: dict[str, dict[str, Any]] = stored.get("costs", {})
        self.meta: dict[str, dict[str, Any]] = stored.get("meta", {})
        self._own_costs: set[tuple[str, str]] = set()
        self._own_meta: set[str] = set()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(row: dict[str, Any]) -> tuple[str, str, float, int]:
        return row["task"], row["path"], row["ratio"], row["seed"]

    def has(self, task: str, path: str, ratio: float, seed: int) -> bool:
        return any(self.key(r) == (task, path, ratio, seed) for r in self.rows)

    def cost(self, task: str, path: str) -> dict[str, Any] | None:
        return self.costs.get(task, {}).get(path)

    def add(self, row: dict[str, Any]) -> None:
        self._save([row])

    def set_cost(self, task: str, path: str, entry: dict[str, Any]) -> None:
        earlier = self.cost(task, path)
        if earlier is not None and "measured_at" in earlier:  # a re-made record: keep the old measurement on file
            entry = {**entry, "previous": [*earlier.get("previous", []),
                                           {k: v for k, v in earlier.items() if k != "previous"}]}
        self.costs.setdefault(task, {})[path] = entry
        self._own_costs.add((task, path))
        self._save([])

    def set_meta(self, task: str, meta: dict[str, Any]) -> None:
        self.meta[task] = meta
        self._own_meta.add(task)
        self._save([])

    def _save(self, new_rows: list[dict[str, Any]]) -> None:
        stored = self._read()
        seen = {self.key(row) for row in self.rows}
        for row in stored.get("rows", []) + new_rows:
            if self.key(row) not in seen:
                seen.add(self.key(row))
                self.rows.append(row)
        costs = stored.get("costs", {})
        for task, entries in costs.items():
            for path, entry in entries.items():
                if (task, path) not in self._own_costs:
                    self.costs.setdefault(task, {})[path] = entry
        for task, meta in stored.get("meta", {}).items():
            if task not in self._own_meta:
                self.meta[task] = meta
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"about": ABOUT, "meta": self.meta, "costs": self.costs,
                                   "rows": self.rows}, indent=1))
        os.replace(tmp, self.path)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class _SaveBeforeLastEpoch(TrainerCallback):
    """Saves the model at the end of the second-to-last epoch (the earlier checkpoint of `last 2 checkpoints`)."""

    def __init__(self, trainer_ref: list, epochs: int, path: Path):
        self.trainer_ref, self.epochs, self.path = trainer_ref, epochs, path

    def on_epoch_end(self, args, state, control, **kwargs):
        if int(round(state.epoch or 0)) == self.epochs - 1:
            self.trainer_ref[0].save_model(str(self.path))


def plain_training(task: Task, work: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The task's recipe trained with a plain `Trainer` (seed 0, no tracking): the cost unit and the model of paths
    (d), the final checkpoint, and `last 2 checkpoints` (with the model saved after the second-to-last epoch; one
    save of the model, inside the timed run)."""
    set_seed(0)
    model = task.model_init()
    recipe = prune_args(task, str(work / "plain"), 0)
    args = TrainingArguments(**{**{k: v for k, v in recipe.to_dict().items() if k in TrainingArguments.__dataclass_fields__},
                                "report_to": [], "save_strategy": "no", "eval_strategy": "no", "push_to_hub": False})
    trainer = Trainer(model=model, args=args, train_dataset=task.train, data_collator=task.collator,
                      compute_metrics=compute_accuracy)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_SaveBeforeLastEpoch([trainer], int(task.args["num_train_epochs"]), work / "earlier_model"))
    with Stopwatch() as clock:
        trainer.train()
    accuracy = float(trainer.evaluate(task.test)["eval_accuracy"])
    trainer.save_model(str(work / "final_model"))  # a resumed run reads it back for the checkpoint paths
    return trainer.model, {"wall": clock.wall, "cpu": clock.cpu, "test_accuracy": accuracy, "measured_at": now(),
                           "what": "plain transformers.Trainer, the task's recipe, seed 0; trainer.train() only"}


def proxy_task(task: Task, work: Path) -> Task:
    """The `proxy` path's model, rows and recipe for `task` (see the module docstring), rows aligned with the task's.

    Text tasks' embeddings are cached in `work` (the timed measurement starts from an empty `work`)."""
    from hf_prune.models import SmallCNNForImageClassification
    from hf_prune.tasks import small_cnn

    model = None if "texts" in task.extra else task.model_init()  # text tasks: no need to load the backbone here
    if isinstance(model, SmallCNNForImageClassification):
        config = model.config
        epochs = max(2, math.ceil(task.args["num_train_epochs"] / 2))

        def init():
            return small_cnn(num_labels=config.num_labels, image_size=config.image_size,
                             num_channels=config.num_channels, conv_channels=[c // 4 for c in config.conv_channels],
                             hidden_size=config.hidden_size // 4)

        notes = f"the small CNN at a quarter of its widths, the task's recipe for {epochs} epochs"
        return Task(task.name, task.train, task.test, init, {**task.args, "num_train_epochs": epochs},
                    collator=task.collator, notes=notes, validation=task.validation)
    if "texts" not in task.extra:
        raise SystemExit(f"no proxy is defined for task {task.name!r} (a small CNN or a text task with raw texts)")
    labels = task.train.features["label"]

    def embedded(texts: list[str], rows: Any, split: str) -> Any:
        vectors = benchmark.minilm_embeddings(texts, work / "embeddings" / f"{split}.npy")
        return benchmark.embedding_dataset(vectors, rows["label"], labels)

    train = embedded(task.extra["texts"], task.train, "train")
    validation = None if task.validation is None else embedded(task.extra["validation_texts"], task.validation,
                                                               "validation")
    dim = int(train[0]["embedding"].shape[0])
    return Task(task.name, train, None, lambda: benchmark.LinearProbe(dim, labels.num_classes), benchmark.probe_args(20),
                notes="a linear probe on the frozen backbone's MiniLM sentence embeddings, 20 epochs",
                validation=validation)


def load_model(task: Task, work: Path, name: str = "final_model") -> torch.nn.Module:
    return type(task.model_init()).from_pretrained(str(work / name))


def scoring_trainer(task: Task, output_dir: Path, score_epochs: int | None = None) -> PruneTrainer:
    extra = {"score_epochs": score_epochs} if score_epochs else {}
    trainer = PruneTrainer(model_init=task.model_init, args=prune_args(task, str(output_dir), 0, **extra),
                           train_dataset=task.train, eval_dataset=task.validation, data_collator=task.collator)
    trainer.remove_callback(PrinterCallback)
    return trainer


class TaskRun:
    """The scoring paths of one task: their costs (measured once) and a pruner per (path, seed)."""

    def __init__(self, name: str, cli: argparse.Namespace, results: CostResults):
        self.name, self.cli, self.results = name, cli, results
        self.task = make_task(name)
        self.work = Path(cli.work) / name
        self.work.mkdir(parents=True, exist_ok=True)
        epochs = self.task.args["num_train_epochs"]
        self.paths = [p for p in cli.paths if not (score_epochs_of(p) or 0) >= epochs
                      and not (p == CHECKPOINTS and epochs < 2)]
        self.trainers: dict[str, PruneTrainer] = {}
        self.pruners: dict[tuple[str, int], HFPruner] = {}
        self.failures: dict[str, str] = {}
        self.model: torch.nn.Module | None = None

    def log(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)

    # ------------------------------------------------------------------ costs
    def measure(self) -> None:
        """Every path's scoring cost and the cost unit, one after another (skipped when already on file)."""
        training = self.results.cost(self.name, TRAINING)
        models = {CHECKPOINT: ["final_model"], CHECKPOINTS: ["earlier_model", "final_model"]}
        missing = [name for path, names in models.items() if path in self.paths and not (
            self.results.cost(self.name, path) and (self.work / path.replace(" ", "_") / "prune_record").is_dir())
            for name in names if not (self.work / name / "config.json").is_file()]
        if training is None:
            self.model, entry = plain_training(self.task, self.work)
            self.results.set_cost(self.name, TRAINING, entry)
            self.log(f"one full training run (plain Trainer): {entry['wall']:.1f} s wall, {entry['cpu']:.1f} s CPU; "
                     f"test accuracy {entry['test_accuracy']:.4f}")
        elif missing:
            # The cost unit is on file: train the same run again (seed 0) for its models only, leaving the unit as
            # it was measured.
            self.model, entry = plain_training(self.task, self.work)
            self.log(f"checkpoint models {missing} re-made by the plain run (seed 0; cost unit kept from "
                     f"{training.get('measured_at')}; this run's test accuracy {entry['test_accuracy']:.4f})")
        for path in self.paths:
            if path == RANDOM:
                continue
            try:
                self.measure_path(path)
            except HfPruneError as err:  # e.g. a subset run at chance level: the path has no subsets on this task
                self.failures[path] = f"{type(err).__name__}: {err}"
                self.results.set_cost(self.name, path, {"failed": self.failures[path], "measured_at": now()})
                self.log(f"{path}: failed ({self.failures[path][:200]})")

    def measure_path(self, path: str) -> None:
        entry = self.results.cost(self.name, path)
        if path == FULL_RECORD or score_epochs_of(path):
            trainer = scoring_trainer(self.task, self.work / path.replace(" ", "_"), score_epochs_of(path))
            self.trainers[path] = trainer
            if entry is not None and "failed" not in entry and trainer.has_record():
                return
            with Stopwatch() as train_clock:
                trainer.train()
            with Stopwatch() as score_clock:
                HFPruner(trainer).compute_score()
            entry = {"wall": train_clock.wall + score_clock.wall, "cpu": train_clock.cpu + score_clock.cpu,
                     "train_wall": train_clock.wall, "score_wall": score_clock.wall,
                     "epochs_trained": int(round(trainer.state.epoch or 0))}
        elif path == PROXY:
            root = self.work / "proxy"
            if entry is not None and "failed" not in entry:
                self.trainers[path] = self.proxy_trainer(root)
                if self.trainers[path].has_record():
                    return
            shutil.rmtree(root, ignore_errors=True)  # embeddings and record are made inside the timer
            with Stopwatch() as clock:
                trainer = self.proxy_trainer(root)
                trainer.train()
                HFPruner(trainer).compute_score()
            self.trainers[path] = trainer
            entry = {"wall": clock.wall, "cpu": clock.cpu, "proxy": self.proxy_notes,
                     "epochs_trained": int(round(trainer.state.epoch or 0))}
        elif path == KNN:
            if entry is not None and "failed" not in entry:
                return
            with Stopwatch() as clock:
                pruner = self.knn_pruner(self.cli.seeds[0])
                output = pruner.compute_score()
            self.pruners[(path, self.cli.seeds[0])] = pruner
            library = {k: v for k, v in output.info.get("extrapolation", {}).items() if k != "score_info"}
            entry = {"wall": clock.wall, "cpu": clock.cpu, "seed": self.cli.seeds[0], "library_timing": library}
        elif path in (CHECKPOINT, CHECKPOINTS):
            record_root = self.work / path.replace(" ", "_")
            if entry is not None and "failed" not in entry and (record_root / "prune_record").is_dir():
                return
            final = self.model if self.model is not None else load_model(self.task, self.work)
            models = [final] if path == CHECKPOINT else [load_model(self.task, self.work, "earlier_model"), final]
            with Stopwatch() as clock:
                pruner = HFPruner.from_checkpoints(
                    models, self.task.train, data_collator=self.task.collator, eval_dataset=self.task.validation,
                    batch_size=self.task.args.get("per_device_eval_batch_size", 64), output_dir=str(record_root))
                pruner.compute_score()
            entry = {"wall": clock.wall, "cpu": clock.cpu}
        else:
            raise SystemExit(f"unknown path {path!r}; known: {PATHS}")
        training = self.results.cost(self.name, TRAINING)
        entry = {**entry, "measured_at": now(), "what": counted(path)}
        self.results.set_cost(self.name, path, entry)
        self.log(f"{path}: {entry['wall']:.1f} s wall ({entry['wall'] / training['wall']:.3f} of a training run), "
                 f"{entry['cpu']:.1f} s CPU ({entry['cpu'] / training['cpu']:.3f})")

    def proxy_trainer(self, root: Path) -> PruneTrainer:
        proxy = proxy_task(self.task, root)
        if len(proxy.train) != len(self.task.train):
            raise SystemExit(f"the proxy's rows do not match the task's ({len(proxy.train)} vs {len(self.task.train)})")
        self.proxy_notes = proxy.notes
        trainer = PruneTrainer(model_init=proxy.model_init, args=prune_args(proxy, str(root), 0),
                               train_dataset=proxy.train, eval_dataset=proxy.validation, data_collator=proxy.collator)
        trainer.remove_callback(PrinterCallback)
        return trainer

    # ------------------------------------------------------------------ subsets
    def knn_pruner(self, seed: int) -> HFPruner:
        trainer = scoring_trainer(self.task, self.work / "knn")  # never trained itself
        return HFPruner(trainer, seed=seed, allow_empty_classes=True, extrapolate="knn", extrapolate_fraction=0.1)

    def pruner(self, path: str, seed: int) -> HFPruner:
        """The default's pruner of `path` with selection seed `seed` (random: the random selector's)."""
        if (path, seed) in self.pruners:
            return self.pruners[(path, seed)]
        # As the benchmark's `default` rows: a seeded draw, and baselines allowed to empty a class.
        if path == RANDOM:
            # Any of the task's scoring runs serves: `random` reads only the labels (the first run measured here).
            trainer = self.trainers.get(FULL_RECORD) or next(iter(self.trainers.values()))
            pruner = HFPruner(trainer, method="random", selector="random", seed=seed, allow_empty_classes=True)
        elif path == KNN:
            pruner = self.knn_pruner(seed)
        elif path in (CHECKPOINT, CHECKPOINTS):
            record = self.work / path.replace(" ", "_") / "prune_record"
            pruner = HFPruner(record=str(record), dataset=self.task.train, seed=seed, allow_empty_classes=True)
        else:
            pruner = HFPruner(self.trainers[path], seed=seed, allow_empty_classes=True)
        self.pruners = {key: value for key, value in self.pruners.items() if key[0] != path}  # one per path at a time
        self.pruners[(path, seed)] = pruner
        return pruner

    def select(self, path: str, ratio: float, seed: int) -> dict[str, Any]:
        """Kept rows of (path, ratio, seed), cached in `--work` with the record they come from."""
        cache = self.work / "selections" / f"{path.replace(' ', '_')}-{ratio}-{seed}.json"
        options = {"path": path, **(method_options("default") | {"rule": DEFAULT_RULE} if path != RANDOM
                                    else {"method": "random"})}
        measured_at = (self.results.cost(self.name, FULL_RECORD if path == RANDOM else path) or {}).get("measured_at")
        if cache.is_file():
            data = json.loads(cache.read_text())
            if data["options"] == options and (data["measured_at"] == measured_at or path == KNN):
                return data
        pruner = self.pruner(path, seed)
        with Stopwatch() as score_clock:
            pruner.compute_score()  # cached after the first ratio; under extrapolation, this seed's subset run
        with Stopwatch() as clock:
            result = pruner.select(ratio)
        info = {"score": result.method, "selector": result.selector,
                "kept_per_class": np.bincount(result.labels[result.kept],
                                              minlength=int(result.labels.max()) + 1).tolist()}
        selection = result.info.get("selection") or {}
        info.update({k: selection[k] for k in ("memorization_gap", "cutoff_applied", "side", "trust") if k in selection})
        data = {"kept": result.kept.tolist(), "selection_seconds": clock.wall, "info": info, "options": options,
                "measured_at": measured_at}
        if path == KNN:  # every seed trains its own subset model; the first computation is the one that costs
            data["scoring_wall"] = pruner._timing.get(f"score_{pruner.score.name}_seconds", score_clock.wall)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(data))
        return data

    def rows(self) -> None:
        recipe = prune_args(self.task, str(self.work / "retrain"), 0)
        for path in self.paths:
            if path in self.failures:
                continue
            for seed in self.cli.seeds:
                for ratio in self.cli.ratios:
                    if self.results.has(self.name, path, ratio, seed):
                        continue
                    try:
                        chosen = self.select(path, ratio, seed)
                    except HfPruneError as err:
                        self.log(f"{path} seed {seed}: no subset ({type(err).__name__}: {str(err)[:200]})")
                        self.results.set_meta(self.name, {**self.results.meta.get(self.name, {}), "failures": {
                            **self.results.meta.get(self.name, {}).get("failures", {}),
                            f"{path} seed {seed}": f"{type(err).__name__}: {err}"}})
                        break
                    kept = np.asarray(chosen["kept"])
                    with Stopwatch() as clock:
                        outcome = retrain_and_evaluate(self.task.model_init, self.task.train.select(kept),
                                                       self.task.test, recipe, seed=seed,
                                                       data_collator=self.task.collator)
                    row = {"task": self.name, "path": path, "ratio": ratio, "seed": seed, "selection_seed": seed,
                           "accuracy": outcome.accuracy, "macro_f1": outcome.macro_f1, "rows_kept": len(kept),
                           "train_seconds": outcome.train_seconds, "retrain_wall": clock.wall,
                           "retrain_cpu": clock.cpu, "selection_seconds": chosen["selection_seconds"],
                           "record_measured_at": chosen["measured_at"], "info": chosen["info"]}
                    if "scoring_wall" in chosen:
                        row["scoring_wall"] = chosen["scoring_wall"]
                    self.results.add(row)
                    self.log(f"{path} r={ratio} seed {seed}: {outcome.accuracy:.4f} (kept {len(kept)}, trained in "
                             f"{outcome.train_seconds:.1f} s)")

    def run(self) -> None:
        self.results.set_meta(self.name, {
            **self.results.meta.get(self.name, {}), "protocol": self.task.notes, "train_rows": len(self.task.train),
            "test_rows": len(self.task.test),
            "validation_rows": None if self.task.validation is None else len(self.task.validation),
            "num_train_epochs": self.task.args["num_train_epochs"], "threads": torch.get_num_threads(),
            "default_options": method_options("default"), "paths": self.paths})
        self.measure()
        self.rows()


# ---------------------------------------------------------------------- report
def fractions(results: CostResults, task: str, path: str) -> tuple[float, float] | None:
    """(wall, CPU) scoring cost of `path` as a fraction of one full training run; random costs nothing."""
    unit = results.cost(task, TRAINING)
    if path == RANDOM:
        return (0.0, 0.0) if unit else None
    entry = results.cost(task, path)
    if not unit or not entry or "failed" in entry:
        return None
    return entry["wall"] / unit["wall"], entry["cpu"] / unit["cpu"]


def accuracies(results: CostResults, task: str, path: str, ratio: float) -> list[float]:
    return [r["accuracy"] for r in results.rows if (r["task"], r["path"], r["ratio"]) == (task, path, ratio)]


def welch_below_random(results: CostResults, task: str, path: str, ratio: float) -> float | None:
    """One-sided Welch p-value of "the path's subsets train worse than random ones" (None below 2 seeds a side)."""
    from scipy.stats import ttest_ind

    mine, random = accuracies(results, task, path, ratio), accuracies(results, task, RANDOM, ratio)
    if path == RANDOM or len(mine) < 2 or len(random) < 2:
        return None
    with warnings.catch_warnings():  # identical accuracies (a zero spread) make scipy warn, and p NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(mine, random, equal_var=False, alternative="less").pvalue)
    return None if math.isnan(p) else p


def break_even(results: CostResults, task: str, path: str, ratio: float) -> float | None:
    """Trainings on the pruned set that repay the scoring (wall-clock; inf: a subset run is not faster)."""
    unit, entry = results.cost(task, TRAINING), results.cost(task, path)
    subset = [r["train_seconds"] for r in results.rows if (r["task"], r["path"], r["ratio"]) == (task, path, ratio)]
    if path == RANDOM:
        return 0.0
    if not unit or not entry or "failed" in entry or not subset:
        return None
    saved = unit["wall"] - float(np.mean(subset))
    return entry["wall"] / saved if saved > 0 else math.inf


def write_report(results: CostResults, out: Path, ratios: list[float], reference: str) -> None:
    tasks = list(dict.fromkeys(r["task"] for r in results.rows)) or list(results.costs)
    lines = ["# Scoring cost of the default's subsets, by scoring path (issue 27, item 4)", "",
             "Produced by `scripts/bench_cost.py` (its docstring has the protocol). Cost: the path's scoring seconds "
             "over those of one full training run of the recipe with a plain `transformers.Trainer` (seed 0), "
             "wall-clock / CPU (user + system), measured in the same process before the retraining. Accuracy: test "
             "accuracy (%) of a fresh model trained on the subset under the benchmark's protocol, mean ± sample std "
             "(n seeds; a new draw per seed). `full − path`: full record's mean minus the path's, in points "
             "(positive: the path's subsets train worse). `p<rand`: one-sided Welch p-value of \"the path trains "
             "worse than random\". `b/e`: break-even, scoring wall seconds / (full training − subset training "
             "wall seconds): how many trainings on the pruned set repay the scoring.", ""]
    for task in tasks:
        meta = results.meta.get(task, {})
        unit = results.cost(task, TRAINING)
        stats = summarise([{**r, "method": r["path"]} for r in results.rows if r["task"] == task])
        task_paths = ordered_paths({*meta.get("paths", PATHS), *results.costs.get(task, {})} - {TRAINING})
        task_ratios = [r for r in ratios if any((p, r) in stats for p in task_paths)] or sorted({k[1] for k in stats})
        lines += [f"## `{task}`", "", f"Protocol: {meta.get('protocol', '')}.", "",
                  f"Training rows: {meta.get('train_rows')}; test rows: {meta.get('test_rows')}; scoring eval set: "
                  f"{meta.get('validation_rows') or 'none'}; torch threads: {meta.get('threads')}."]
        if unit:
            lines += ["", f"One full training run (the cost unit): {unit['wall']:.1f} s wall, {unit['cpu']:.1f} s CPU; "
                          f"that model's test accuracy {100 * unit['test_accuracy']:.2f} % (seed 0)."]
        lines.append("")
        header = "| path | cost counts | cost wall / CPU |"
        rule = "|---|---|---|"
        for ratio in task_ratios:
            header += f" r = {ratio:g} | full − path | p<rand | b/e |"
            rule += "---|---|---|---|"
        lines += [header, rule]
        full = {ratio: stats.get((FULL_RECORD, ratio)) for ratio in task_ratios}
        for path in task_paths:
            entry = results.cost(task, path) or {}
            share = fractions(results, task, path)
            cost = f"{share[0]:.3f} / {share[1]:.3f}" if share else ("failed" if "failed" in entry else "–")
            cells = [path, counted(path) if path != RANDOM else "–", cost]
            for ratio in task_ratios:
                cell = stats.get((path, ratio))
                cells.append(f"{accuracy_text(*cell)} ({cell[2]})" if cell else "–")
                base = full[ratio]
                cells.append(f"{100 * (base[0] - cell[0]):+.2f}" if cell and base and path != FULL_RECORD
                             else "–")
                p = welch_below_random(results, task, path, ratio)
                cells.append(f"{p:.3f}" if p is not None else "–")
                turns = break_even(results, task, path, ratio)
                cells.append("–" if turns is None or not cell else ("never" if math.isinf(turns) else f"{turns:.2f}"))
            lines.append("| " + " | ".join(cells) + " |")
        failures = {p: e["failed"] for p, e in results.costs.get(task, {}).items() if "failed" in e}
        failures.update(meta.get("failures", {}))
        if failures:
            # The library's diagnosis, without its advice on fixing the recipe (the recipe is the task's).
            lines += ["", "Paths without subsets:", ""]
            lines += [f"* `{p}`: {m.split('. Fix')[0]}" for p, m in failures.items()]
        knn = results.cost(task, KNN)
        if knn and "library_timing" in knn:
            timing = knn["library_timing"]
            lines += ["", f"`{KNN}` as the library reports it (`info[\"extrapolation\"]`, first seed): subset run "
                          f"{timing.get('train_seconds', float('nan')):.1f} s, embedding "
                          f"{timing.get('embed_seconds', float('nan')):.1f} s, kNN "
                          f"{timing.get('extrapolate_seconds', float('nan')):.2f} s, "
                          f"{timing.get('seconds', float('nan')):.1f} s in all (measured around the call: "
                          f"{knn['wall']:.1f} s wall)."]
        lines.append("")
    lines += ["Last line of the run: `" + summary_line(results, ratios, reference) + "`", ""]
    (out / "cost.md").write_text("\n".join(lines))
    plot(results, out, tasks, ratios)


def plot(results: CostResults, out: Path, tasks: list[str], ratios: list[float]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib is not installed: cost.png not written", flush=True)
        return
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5.5 * max(1, len(tasks)), 4.5), squeeze=False)
    every_path = measured_paths(results)
    markers = dict(zip(every_path, "osD*^vPxXdh<>"))
    colours = {ratio: plt.get_cmap("viridis")(k / max(1, len(ratios) - 1) * 0.85) for k, ratio in enumerate(ratios)}
    for ax, task in zip(axes[0], tasks):
        stats = summarise([{**r, "method": r["path"]} for r in results.rows if r["task"] == task])
        for ratio in ratios:
            if (RANDOM, ratio) in stats:
                ax.axhline(100 * stats[(RANDOM, ratio)][0], color=colours[ratio], linestyle="--", linewidth=1)
        for path in every_path:
            share = fractions(results, task, path)
            if path == RANDOM or share is None:
                continue
            for ratio in ratios:
                if (path, ratio) in stats:
                    mean, std, _ = stats[(path, ratio)]
                    ax.errorbar([share[1]], [100 * mean], yerr=[100 * std], marker=markers[path], color=colours[ratio],
                                capsize=3, linestyle="none")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.5, 1, 2]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("scoring cost (CPU) / one full training run")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker=markers[p], color="black", linestyle="none", label=p) for p in every_path
               if p != RANDOM]
    handles += [plt.Line2D([], [], color=colours[r], marker="s", linestyle="none", label=f"r = {r:g}") for r in ratios]
    handles.append(plt.Line2D([], [], color="grey", linestyle="--", label="random (per ratio)"))
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(out / "cost.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def summary_line(results: CostResults, ratios: list[float], reference: str) -> str:
    """`scoring_cost=<CPU fraction> worst_delta_vs_full_record=<points> ratios=<...>` (see the module docstring)."""
    ratio_text = ",".join(f"{r:g}" for r in ratios)
    stats = {task: summarise([{**r, "method": r["path"]} for r in results.rows if r["task"] == task])
             for task in dict.fromkeys(r["task"] for r in results.rows)}
    reference_stats = stats.get(reference, {})
    qualifying = []
    for path in measured_paths(results):
        share = fractions(results, reference, path)
        if path == RANDOM or share is None:
            continue
        cells = [(reference_stats.get((FULL_RECORD, r)), reference_stats.get((path, r))) for r in ratios]
        if all(full and mine and full[0] - mine[0] <= full[1] + 1e-12 for full, mine in cells):
            qualifying.append((share[1], path))
    if not qualifying:
        return f"scoring_cost=none worst_delta_vs_full_record=none ratios={ratio_text}"
    cost, path = min(qualifying)
    deltas = [100 * (table[(FULL_RECORD, r)][0] - table[(path, r)][0]) for table in stats.values() for r in ratios
              if (FULL_RECORD, r) in table and (path, r) in table]
    return f"scoring_cost={cost:.3f} worst_delta_vs_full_record={max(deltas):+.2f} ratios={ratio_text}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["fmnist", "rotten_tomatoes", "fmnist5k"],
                        choices=list(benchmark.TASKS))
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.5, 0.7, 0.9])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--paths", nargs="+", default=None, type=path_argument,
                        help=f"Scoring paths (default: {', '.join(PATHS)}; also 'first E epochs' for any E; "
                             f"`{FULL_RECORD}` and `{RANDOM}` are always run).")
    parser.add_argument("--reference-task", default="fmnist",
                        help="The task whose subsets decide the last line's cheapest path (default: the 60k set).")
    parser.add_argument("--work", default=None, help="Records, models and subsets (default runs/bench_cost).")
    parser.add_argument("--out", default=None, help="cost.json/.md/.png (default benchmarks/results).")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")),
                        help="torch threads (default OMP_NUM_THREADS, else 1).")
    parser.add_argument("--smoke", action="store_true",
                        help="Tiny profile: the benchmark's `smoke` task, 1 seed, ratio 0.5, the cheap paths (default "
                             "--out and --work under runs/bench_cost_smoke).")
    parser.add_argument("--report-only", action="store_true", help="Rewrite cost.md / cost.png from cost.json.")
    cli = parser.parse_args()
    if cli.smoke:
        cli.tasks, cli.seeds, cli.ratios, cli.reference_task = ["smoke"], [1], [0.5], "smoke"
        cli.paths = cli.paths or SMOKE_PATHS
        cli.out = cli.out or str(REPO / "runs" / "bench_cost_smoke")
        cli.work = cli.work or str(REPO / "runs" / "bench_cost_smoke" / "work")
    cli.paths = list(dict.fromkeys([FULL_RECORD, *(cli.paths or PATHS), RANDOM]))
    cli.paths = ordered_paths(cli.paths)
    out = Path(cli.out or REPO / "benchmarks" / "results")
    cli.work = cli.work or str(REPO / "runs" / "bench_cost")
    out.mkdir(parents=True, exist_ok=True)
    results = CostResults(out / "cost.json")
    if not cli.report_only:
        logging.set_verbosity_error()
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
        logging.disable_progress_bars()
        torch.set_num_threads(cli.threads)
        for name in cli.tasks:
            TaskRun(name, cli, results).run()
            write_report(results, out, cli.ratios, cli.reference_task)
    write_report(results, out, cli.ratios, cli.reference_task)
    print(summary_line(results, cli.ratios, cli.reference_task), flush=True)


if __name__ == "__main__":
    main()
