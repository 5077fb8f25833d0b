"""Score extrapolation: kNN by hand, identity when the subset is the whole set, and the pruner integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset

from hf_prune import HFPruner, PruneTrainer
from hf_prune.errors import InvalidArgumentError, ScoreNotComputableError
from hf_prune.extrapolation import (
    Extrapolation,
    extrapolation_check,
    gnn_extrapolate,
    knn_extrapolate,
    leave_one_out_knn,
    spearman,
)
from hf_prune.scores.dynamics import within_class_rank_correlation


def test_knn_by_hand():
    embeddings = np.array([[0.0], [1.0], [3.0], [0.4], [2.6]])
    seeds = np.array([0, 1, 2])
    values = np.array([10.0, 20.0, 40.0])
    plain = knn_extrapolate(embeddings, seeds, values, k=2, weighted=False)
    np.testing.assert_allclose(plain, [10.0, 20.0, 40.0, 15.0, 30.0])
    weighted = knn_extrapolate(embeddings, seeds, values, k=2, weighted=True)
    w = np.exp(-np.array([0.4, 0.6]))  # row 3: neighbours 0 (d=0.4) and 1 (d=0.6)
    assert weighted[3] == pytest.approx((w[0] * 10 + w[1] * 20) / w.sum())
    w = np.exp(-np.array([0.4, 1.6]))  # row 4: neighbours 2 (d=0.4) and 1 (d=1.6)
    assert weighted[4] == pytest.approx((w[0] * 40 + w[1] * 20) / w.sum())


def brute_force_leave_one_out(embeddings, values, k, weighted):
    out = []
    for i in range(len(values)):
        others = [j for j in range(len(values)) if j != i]
        d = np.array([np.linalg.norm(embeddings[i] - embeddings[j]) for j in others])
        nearest = np.argsort(d, kind="stable")[:k]
        w = np.exp(-(d[nearest] - d[nearest].min())) if weighted else np.ones(len(nearest))
        out.append((w * values[np.array(others)[nearest]]).sum() / w.sum())
    return np.array(out)


@pytest.mark.parametrize("weighted", [True, False])
def test_leave_one_out_knn_against_brute_force(weighted):
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(50, 3))
    seeds = np.sort(rng.choice(50, 20, replace=False))
    values = rng.random(20)
    np.testing.assert_allclose(leave_one_out_knn(embeddings, seeds, values, k=4, weighted=weighted),
                               brute_force_leave_one_out(embeddings[seeds], values, 4, weighted), rtol=1e-5)


def test_extrapolation_check_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    own = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.5, 0.7])
    predicted = np.array([0.2, 0.1, 0.3, 0.4, 0.8, 0.6, 0.7])  # class 0: ranks 1,0,2,3; class 1: ranks 2,0,1
    # Within-class ranks centred and scaled by the class size, pooled: x = own, y = predicted.
    x = np.array([-1.5, -0.5, 0.5, 1.5]) / 4, np.array([1.0, -1.0, 0.0]) / 3
    y = np.array([-0.5, -1.5, 0.5, 1.5]) / 4, np.array([1.0, -1.0, 0.0]) / 3
    x, y = np.concatenate(x), np.concatenate(y)
    q = (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())
    check = extrapolation_check({"reliability": 0.95, "explained": 0.5}, own, predicted, labels)
    assert check["extrapolation_fit"] == pytest.approx(q)
    assert check["reliability"] == pytest.approx(q**2) and check["seed_reliability"] == 0.95
    assert check["explained"] == 0.5  # the seed run's other measurements are kept
    capped = extrapolation_check({"reliability": 0.3}, own, predicted, labels)
    assert capped["reliability"] == pytest.approx(0.3)  # never above the seed run's own reliability
    unmeasurable = extrapolation_check({"reliability": 0.9}, own[:2], predicted[:2], labels[:2])
    assert unmeasurable["extrapolation_fit"] is None and unmeasurable["reliability"] is None
    one_epoch = extrapolation_check({"reliability": None, "unmeasurable": "each row was scored once"}, own, predicted,
                                    labels)
    assert one_epoch["reliability"] is None and one_epoch["extrapolation_fit"] == pytest.approx(q)
    assert one_epoch["unmeasurable"] == "the seed run's: each row was scored once"


def test_identity_when_all_rows_are_seeds():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 3))
    values = rng.random(30)
    np.testing.assert_array_equal(knn_extrapolate(embeddings, np.arange(30), values, k=5), values)
    predicted, _ = gnn_extrapolate(embeddings, rng.integers(0, 2, 30), np.arange(30), values, k=5, epochs=3)
    np.testing.assert_allclose(predicted, values)


def test_gnn_learns_a_smooth_score():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(300, 2))
    truth = embeddings[:, 0] * 2.0 + embeddings[:, 1]
    seeds = np.sort(rng.choice(300, 90, replace=False))
    predicted, info = gnn_extrapolate(embeddings, np.zeros(300, dtype=int), seeds, truth[seeds], k=10, epochs=40)
    others = np.setdiff1d(np.arange(300), seeds)
    assert spearman(predicted[others], truth[others]) > 0.8
    assert info["validation_pearson"] > 0.5


def test_spearman_with_ties():
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 2, 3])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)


def test_pruner_extrapolation_with_whole_set_equals_direct_scoring(tmp_path):
    dataset, _, _ = vector_dataset(n=40)

    def make_trainer(out):
        torch.manual_seed(0)
        return PruneTrainer(model_init=lambda: IdentityHead(), args=quiet_args(out, num_train_epochs=3),
                            train_dataset=dataset)

    extrapolated = HFPruner(make_trainer(tmp_path / "a"), method="dual", extrapolate="knn", extrapolate_fraction=1.0)
    values = extrapolated.compute_score().values
    direct_trainer = make_trainer(tmp_path / "b")
    direct = HFPruner(direct_trainer, method="dual").compute_score().values
    np.testing.assert_allclose(values, direct, rtol=1e-6)
    info = extrapolated.compute_score().info["extrapolation"]
    assert info["seed_rows"] == 40 and info["method"] == "knn"
    pruned = extrapolated.prune(0.5)
    assert len(pruned) == 20 and "score_dual" in pruned.column_names


def test_pruner_extrapolation_subset(tmp_path, caplog):
    dataset, _, _ = vector_dataset(n=60)
    trainer = PruneTrainer(model_init=lambda: IdentityHead(), args=quiet_args(tmp_path, num_train_epochs=3),
                           train_dataset=dataset)
    pruner = HFPruner(trainer, method="el2n", extrapolate="knn", extrapolate_fraction=0.5, extrapolate_k=3)
    with caplog.at_level("WARNING", logger="hf_prune"):
        output = pruner.compute_score()
    assert output.values.shape == (60,) and np.isfinite(output.values).all()
    assert output.info["extrapolation"]["seed_rows"] == 30
    # 30 seed rows are few to extrapolate from: the log says so.
    assert "`extrapolate_fraction=0.5` of 60 rows trains the seed model on 30 rows, too few" in caplog.text
    assert trainer.state.global_step == 0  # the full training set was never trained on
    dual_beta = HFPruner(trainer, method="dual", selector="dual_beta", extrapolate="knn", extrapolate_fraction=0.5,
                         extrapolate_k=3)
    assert len(dual_beta.prune(0.5)) == 30  # p_mean is extrapolated too
    # The default trusts extrapolated scores as far as the seeds' leave-one-out kNN fit of `p_mean` says, squared.
    output = dual_beta.compute_score()
    seeds = Extrapolation(fraction=0.5, k=3).seed_rows(60, dual_beta.config.seed)
    embeddings = np.asarray(dataset["x"], dtype=np.float64)  # IdentityHead: the head's input is the row itself
    p_mean = output.aux["p_mean"][seeds]  # seeds keep their own values
    q = within_class_rank_correlation(p_mean, brute_force_leave_one_out(embeddings[seeds], p_mean, 3, True),
                                      np.asarray(dataset["label"])[seeds])
    check = dual_beta.result.info["selection"]["self_check"]
    assert check["extrapolation_fit"] == pytest.approx(q, abs=1e-6)
    expected = min(max(q, 0.0) ** 2, check["seed_reliability"])
    assert dual_beta.result.info["selection"]["trust"] == pytest.approx(expected, abs=1e-6)


def test_extrapolation_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="`extrapolate` must be one of"):
        Extrapolation("svm")
    with pytest.raises(InvalidArgumentError, match=r"`extrapolate_fraction` must be a number in \(0, 1\], got 0\.0"):
        Extrapolation("knn", fraction=0.0)
    dataset, _, _ = vector_dataset(n=30)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    with pytest.raises(InvalidArgumentError, match="cannot be extrapolated"):
        HFPruner(trainer, method="sgd_influence", extrapolate="knn").compute_score()
    trainer.train()
    with pytest.raises(ScoreNotComputableError, match="has already been trained and the trainer has no `model_init`"):
        HFPruner(trainer, method="dual", extrapolate="knn").compute_score()


def test_the_seed_run_reads_the_eval_set_and_counts_the_whole_sets_steps(tmp_path):
    """The seed run is the recipe on the seeds: it tracks the trainer's eval set (the held-out gap that decides the
    memorisation regime; the prequential gap of a short run from scratch misfires), and the self-check counts a
    subset's steps with the whole set's batches per epoch (8 per epoch for 64 rows at batch 8), not the seed run's 4
    (which made a half-set subset look step-starved)."""
    dataset, _, _ = vector_dataset(n=64, seed=1)
    held, _, _ = vector_dataset(n=30, seed=2)
    trainer = PruneTrainer(model_init=lambda: IdentityHead(), args=quiet_args(tmp_path, num_train_epochs=3),
                           train_dataset=dataset, eval_dataset=held)
    pruner = HFPruner(trainer, extrapolate="knn", extrapolate_fraction=0.5, extrapolate_k=3)
    check = pruner.compute_score().info["self_check"]
    assert check["seed_steps_per_epoch"] == 4 and check["steps_per_epoch"] == 8
    assert check["eval_accuracy"] is not None and check["eval_gap"] is not None
    selection = pruner.select(0.5).info["selection"]
    assert selection["regime_signal"] == "eval" and selection["subset_steps"] == pytest.approx(0.5 * 3 * 8)


def test_a_short_seed_record_is_not_followed(tmp_path):
    """`score_epochs` well below the recipe's epochs: the seed run's record is too short to follow, extrapolated or
    not (it was followed at the extrapolation's trust before)."""
    dataset, _, _ = vector_dataset(n=64, seed=1)
    trainer = PruneTrainer(model_init=lambda: IdentityHead(),
                           args=quiet_args(tmp_path, num_train_epochs=7, score_epochs=2), train_dataset=dataset)
    selection = HFPruner(trainer, extrapolate="knn", extrapolate_fraction=0.5, extrapolate_k=3).select(0.5)
    assert selection.info["selection"]["trust_rule"] == "short-record" and selection.info["selection"]["trust"] == 0.0


def test_extrapolated_results_say_so_in_the_card_and_after_loading(tmp_path):
    dataset, _, _ = vector_dataset(n=64, seed=1)
    trainer = PruneTrainer(model_init=lambda: IdentityHead(), args=quiet_args(tmp_path, num_train_epochs=3),
                           train_dataset=dataset)
    pruner = HFPruner(trainer, method="el2n", extrapolate="knn", extrapolate_fraction=0.5, extrapolate_k=3)
    pruner.select(0.5)
    assert pruner.result.info["extrapolation"] == {"method": "knn", "fraction": 0.5, "k": 3, "weighted": True,
                                                   "seed_rows": 32}
    pruner.save(str(tmp_path / "saved"))
    again = HFPruner.load(str(tmp_path / "saved")).select(0.7)
    assert again.info["extrapolation"]["seed_rows"] == 32
    pruner.save_to_disk(str(tmp_path / "pruned"), 0.5)
    text = (tmp_path / "pruned" / "README.md").read_text()
    assert "extrapolated (`knn`, k = 3) from a `transformers.Trainer` run" in text and "seed subset of 32 rows" in text
    assert "ordinary `transformers.Trainer` run" not in text
