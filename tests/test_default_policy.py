"""The default policy: one name, every spelling the same; a class floor; a self-check reported with every selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset

from hf_prune import HFPruner, PruneTrainer
from hf_prune.errors import InvalidArgumentError
from hf_prune.scores.dynamics import split_half_reliability
from hf_prune.selection import Budget, SelectionInputs, get_selector


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    dataset, _, _ = vector_dataset(n=60)
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path_factory.mktemp("policy"), num_train_epochs=4),
                           train_dataset=dataset)
    trainer.train()
    return trainer


def test_every_spelling_of_the_default_selects_the_same_rows(trained):
    spellings = [HFPruner(trained), HFPruner(trained, method="default"),
                 HFPruner(trained, method="default", selector="dual_beta"),
                 HFPruner(trained, method="dual", selector="dual_beta")]
    for ratio in (0.3, 0.7):
        kept = [pruner.select(ratio).kept for pruner in spellings]
        for other in kept[1:]:
            np.testing.assert_array_equal(other, kept[0])
    assert {p.selector.options()["sampling"] for p in spellings} == {"systematic"}
    with pytest.raises(InvalidArgumentError, match=r"`method='default'` is the library's default policy .*topk"):
        HFPruner(trained, method="default", selector="topk")


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_class_floor_holds_on_an_unbalanced_toy_set(ratio):
    # 3 classes of 300 / 60 / 40 rows; every row of the small classes is easy (P̄ near 1), which DUAL-Beta's weights
    # all but drop at these ratios.
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [300, 60, 40])
    p_mean = np.where(labels == 0, rng.uniform(0.2, 0.8, 400), rng.uniform(0.97, 0.999, 400))
    scores = (1 - p_mean) * np.sqrt(p_mean * (1 - p_mean)) + 1e-4
    data = SelectionInputs(labels=labels, scores=scores, aux={"p_mean": p_mean}, seed=3)
    n_keep = 400 - round(ratio * 400)
    anything = SelectionInputs(labels=labels, scores=scores, aux={"p_mean": p_mean}, seed=3, allow_empty_classes=True)
    without = get_selector("dual_beta", hard_cutoff="none", class_floor=0.0)(anything, Budget(n_keep=n_keep))
    starved = np.bincount(labels[without.kept], minlength=3)
    share = n_keep * np.array([300, 60, 40]) / 400
    assert (starved[1:] < 0.5 * share[1:]).any()  # the case the floor is for
    floored = get_selector("dual_beta", hard_cutoff="none")(data, Budget(n_keep=n_keep))
    counts = np.bincount(labels[floored.kept], minlength=3)
    assert len(floored.kept) == n_keep
    assert (counts >= np.floor(0.5 * share)).all()
    assert floored.info["floor_lifted"] and floored.info["class_floor"] == 0.5
    with pytest.raises(InvalidArgumentError, match=r"`class_floor` is the least share .* got 2"):
        get_selector("dual_beta", class_floor=2)


def test_the_floor_leaves_a_balanced_draw_unchanged():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 100)
    p_mean = rng.uniform(0.1, 0.9, 300)
    data = SelectionInputs(labels=labels, scores=rng.random(300), aux={"p_mean": p_mean}, seed=0)
    floored = get_selector("dual_beta", hard_cutoff="none")(data, Budget(n_keep=150))
    plain = get_selector("dual_beta", hard_cutoff="none", class_floor=0.0)(data, Budget(n_keep=150))
    np.testing.assert_array_equal(floored.kept, plain.kept)
    assert floored.info["floor_lifted"] == []


def test_split_half_reliability_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # odd epochs (rows 0 and 2 of the table) and even epochs agree on the order within each class: r = 1
    agree = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]] * 4)
    assert split_half_reliability(agree, labels) == pytest.approx(1.0)
    # the halves rank class 0 in reverse and class 1 the same: pooled r = 0, Spearman-Brown 0
    table = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.4, 0.3, 0.2, 0.1, 0.5, 0.6, 0.7, 0.8]])
    assert split_half_reliability(table, labels) == pytest.approx(0.0)
    # one swap in class 0: ranks (0,1,2,3) against (1,0,2,3): r = 0.8 in that class, 1 in the other, pooled 0.9
    table = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.2, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
    assert split_half_reliability(table, labels) == pytest.approx(2 * 0.9 / 1.9)
    assert split_half_reliability(table[:1], labels) is None


def test_every_selection_reports_its_self_check(trained, tmp_path):
    pruner = HFPruner(trained)
    result = pruner.select(0.5)
    check = result.info["selection"]["self_check"]
    p_true = trained.record.epoch_table("p_true")
    assert check["reliability"] == pytest.approx(split_half_reliability(p_true, np.asarray(trained.record.labels)))
    assert check["explained"] == pytest.approx(pruner.run_quality.explained)
    assert len(check["prequential_curve"]) == 8 and check["eval_gap"] is None
    pruner.save(str(tmp_path / "saved"))
    card = (tmp_path / "saved" / "README.md").read_text()
    assert f"split-half reliability of the rows' difficulty {check['reliability']:.2f}" in card
    assert "self_check:" in card.split("---")[1]
