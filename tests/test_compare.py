"""HFPruner.compare_with_random: the same runs done by hand give the same accuracies, a bad subset is caught, and bad
input names its fix."""

from __future__ import annotations

import logging

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args

from hf_prune import HFPruner, PruneTrainer, RandomComparison
from hf_prune.errors import InvalidArgumentError, RecordError
from hf_prune.evaluation import retrain_and_evaluate


def separable(n: int, seed: int, flipped: int = 0) -> datasets.Dataset:
    """Rows whose label is the argmax of their first three features (a linear head can learn it); the first
    `flipped` rows get another label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = x[:, :3].argmax(axis=1)
    y[:flipped] = (y[:flipped] + 1) % 3
    features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32")),
                                  "label": datasets.ClassLabel(num_classes=3)})
    return datasets.Dataset.from_dict({"x": x.tolist(), "label": y.tolist()}, features=features)


def init() -> torch.nn.Module:
    return IdentityHead()


def trained(tmp_path, train, heldout=None, **kwargs) -> PruneTrainer:
    trainer = PruneTrainer(model_init=init, args=quiet_args(tmp_path, **{"num_train_epochs": 4, **kwargs}),
                           train_dataset=train, eval_dataset=heldout)
    trainer.train()
    return trainer


def test_matches_the_runs_done_by_hand(tmp_path):
    train, heldout = separable(60, 0), separable(90, 1)
    fingerprint = train._fingerprint
    trainer = trained(tmp_path, train, heldout)
    pruner = HFPruner(trainer, method="el2n")
    comparison = pruner.compare_with_random(0.5, seeds=[3, 4])

    kept = pruner.result.kept
    assert comparison.rows_kept == len(kept) == 30
    assert comparison.method == "el2n + topk" and comparison.seeds == [3, 4]
    draws = []
    for i, seed in enumerate([3, 4]):
        by_hand = retrain_and_evaluate(init, train.select(kept), heldout, trainer.args, seed=seed,
                                       data_collator=trainer.data_collator)
        assert comparison.pruned[i] == by_hand.accuracy
        drawn = HFPruner(trainer, method="random", selector="random", seed=seed).select(0.5).kept
        draws.append(set(drawn.tolist()))
        by_hand = retrain_and_evaluate(init, train.select(drawn), heldout, trainer.args, seed=seed,
                                       data_collator=trainer.data_collator)
        assert comparison.random[i] == by_hand.accuracy
    assert draws[0] != draws[1]  # a new random subset per seed
    assert comparison.difference == pytest.approx(np.mean(comparison.pruned) - np.mean(comparison.random))
    assert train._fingerprint == fingerprint
    # No ratio: the last selection is reused.
    again = pruner.compare_with_random(seeds=[3])
    assert again.pruned == comparison.pruned[:1] and again.random == comparison.random[:1]


def test_a_loaded_pruner_compares_like_the_trainers(tmp_path):
    # A pruner from a saved result has no record: its random subsets are drawn from the saved labels, the same rows
    # the trainer's pruner draws, so both comparisons train the same subsets.
    train, heldout = separable(60, 0), separable(90, 1)
    trainer = trained(tmp_path, train, heldout)
    pruner = HFPruner(trainer, method="el2n")
    pruner.select(0.5)
    pruner.save(str(tmp_path / "saved"))
    loaded = HFPruner.load(str(tmp_path / "saved"))
    ours = pruner.compare_with_random(0.5, seeds=[3])
    theirs = loaded.compare_with_random(0.5, seeds=[3], model_init=init, eval_dataset=heldout, args=trainer.args,
                                        data_collator=trainer.data_collator)
    assert (theirs.pruned, theirs.random) == (ours.pruned, ours.random)
    with pytest.raises(RecordError, match="made from a saved result .* not the training record"):
        _ = loaded.record


def test_a_subset_of_mislabelled_rows_is_caught(tmp_path, caplog):
    # A fifth of the labels flipped; keep-top EL2N at 80 % keeps the rows the model fits worst, the flipped ones,
    # so the pruned model learns the wrong rule and a random subset of the same size beats it.
    train, heldout = separable(60, 0, flipped=12), separable(90, 1)
    trainer = trained(tmp_path, train, heldout, num_train_epochs=10, learning_rate=0.5)
    pruner = HFPruner(trainer, method="el2n")
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        comparison = pruner.compare_with_random(0.8, seeds=[0, 1, 2])
    assert len(set(pruner.result.kept.tolist()) & set(range(12))) >= 9
    assert comparison.random_mean - comparison.pruned_mean > 0.3
    assert "trained worse than random subsets" in caplog.text


def test_summary_and_standard_error_by_hand():
    comparison = RandomComparison(ratio=0.5, rows_kept=10, method="m + s", seeds=[0, 1], pruned=[0.8, 0.9],
                                  random=[0.7, 0.7])
    assert comparison.difference == pytest.approx(0.15)
    assert comparison.standard_error == pytest.approx(0.05)  # sqrt(0.005 / 2 + 0 / 2)
    assert "+0.1500" in comparison.summary() and "+3.0" in comparison.summary()
    single = RandomComparison(ratio=0.5, rows_kept=10, method="m + s", seeds=[0], pruned=[0.8], random=[0.7])
    assert single.standard_error is None and single.to_dict()["difference"] == pytest.approx(0.1)


def test_bad_input_names_the_fix(tmp_path):
    train, heldout = separable(30, 0), separable(30, 1)
    trainer = trained(tmp_path / "a", train, heldout)
    pruner = HFPruner(trainer, method="el2n")
    with pytest.raises(InvalidArgumentError, match="`ratio` is required"):
        pruner.compare_with_random()
    with pytest.raises(InvalidArgumentError, match="non-empty list of integers"):
        pruner.compare_with_random(0.5, seeds=[])
    with pytest.raises(InvalidArgumentError, match=r"repeats a seed \(\[0, 0\]\); give distinct seeds"):
        pruner.compare_with_random(0.5, seeds=np.array([0, 0]))  # numpy seeds are integers too
    with pytest.raises(InvalidArgumentError, match="a dict"):
        pruner.compare_with_random(0.5, eval_dataset={"a": heldout, "b": heldout})

    no_eval = trained(tmp_path / "b", train)
    with pytest.raises(InvalidArgumentError, match="pass `eval_dataset=`"):
        HFPruner(no_eval, method="el2n").compare_with_random(0.5)

    torch.manual_seed(0)
    no_init = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "c"), train_dataset=train,
                           eval_dataset=heldout)
    no_init.train()
    with pytest.raises(InvalidArgumentError, match="pass `model_init=`"):
        HFPruner(no_init, method="el2n").compare_with_random(0.5)
    # With model_init given, the same trainer works.
    assert HFPruner(no_init, method="el2n").compare_with_random(0.5, model_init=init, seeds=[0]).rows_kept == 15


def test_an_extrapolating_pruner_compares_without_training_the_whole_run(tmp_path):
    """Score extrapolation trains only the seed subset; its comparison draws the random subsets from the labels, as a
    saved result's does, instead of reading a full record (which trained the whole run first)."""
    train, heldout = separable(80, 0), separable(60, 1)
    trainer = PruneTrainer(model_init=init, args=quiet_args(tmp_path, num_train_epochs=3), train_dataset=train,
                           eval_dataset=heldout)
    pruner = HFPruner(trainer, method="el2n", extrapolate="knn", extrapolate_fraction=0.5, extrapolate_k=3)
    comparison = pruner.compare_with_random(0.5, seeds=[2])
    assert trainer.state.global_step == 0 and not trainer.has_record()
    drawn = HFPruner.from_result(pruner.result, train, selector="random", seed=2, class_quota="proportional",
                                 min_per_class=0).select(0.5).kept
    by_hand = retrain_and_evaluate(init, train.select(drawn), heldout, trainer.args, seed=2,
                                   data_collator=trainer.data_collator)
    assert comparison.random == [by_hand.accuracy] and comparison.rows_kept == 40


def test_bad_arguments_are_refused_before_any_training(tmp_path):
    train, heldout = separable(60, 0), separable(90, 1)
    trainer = trained(tmp_path, train, heldout)
    pruner = HFPruner(trainer, method="el2n")
    with pytest.raises(InvalidArgumentError, match=r"`seeds` is a list of training seeds, got the number 5.*"
                                                   r"seeds=list\(range\(5\)\)"):
        pruner.compare_with_random(0.5, seeds=5)
    with pytest.raises(InvalidArgumentError, match=r"`eval_dataset` has no label column \(columns: \['x'\]\)"):
        pruner.compare_with_random(0.5, eval_dataset=heldout.remove_columns("label"), seeds=[0])
    influence = HFPruner(trainer, method="sgd_influence", selector="greedy", objective="min_norm")
    influence.select(epsilon=1e-3)
    with pytest.raises(InvalidArgumentError, match="made with `epsilon`, which sets no ratio"):
        influence.compare_with_random(seeds=[0])
