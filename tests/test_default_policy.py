"""The default policy: one name, every spelling the same; a class floor; a self-check reported with every selection."""

from __future__ import annotations

import logging

import datasets
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


def test_the_default_is_pinned_by_name_on_a_saved_result_too(trained, tmp_path):
    """`HFPruner.load(path, method="default")` (and `from_result`, and the CLI's `--method default`) select as
    `HFPruner(trainer)`, with the selector's own options even when the result was saved with others."""
    live = HFPruner(trained).select(0.7).kept
    other = HFPruner(trained, method="dual", selector="dual_beta", c_d=1.0)
    other.select(0.7)
    other.save(str(tmp_path / "saved"))
    assert not np.array_equal(HFPruner.load(str(tmp_path / "saved")).select(0.7).kept, live)  # c_d=1 kept
    pinned = HFPruner.load(str(tmp_path / "saved"), method="default")
    assert pinned.selector.options()["c_d"] == 4.0
    np.testing.assert_array_equal(pinned.select(0.7).kept, live)
    np.testing.assert_array_equal(HFPruner.from_result(other.result, method="default").select(0.7).kept, live)
    with pytest.raises(InvalidArgumentError, match=r"`method='default'` is the library's default policy .*topk"):
        HFPruner.load(str(tmp_path / "saved"), method="default", selector="topk")


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_class_floor_holds_on_an_unbalanced_toy_set(ratio):
    # 3 classes of 300 / 60 / 40 rows; every row of the small classes is easy (P̄ near 1), which DUAL-Beta's weights
    # all but drop at these ratios.
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [300, 60, 40])
    p_mean = np.where(labels == 0, rng.uniform(0.2, 0.8, 400), rng.uniform(0.97, 0.999, 400))
    scores = (1 - p_mean) * np.sqrt(p_mean * (1 - p_mean)) + 1e-4
    # Scores of a perfectly reproducible run (reliability 1: no shrinkage towards the stratified sample).
    reliable = {"self_check": {"reliability": 1.0}}
    data = SelectionInputs(labels=labels, scores=scores, aux={"p_mean": p_mean}, seed=3, aux_info=reliable)
    n_keep = 400 - round(ratio * 400)
    anything = SelectionInputs(labels=labels, scores=scores, aux={"p_mean": p_mean}, seed=3, allow_empty_classes=True,
                               aux_info=reliable)
    without = get_selector("dual_beta", hard_cutoff="none", class_floor=0.0)(anything, Budget(n_keep=n_keep))
    starved = np.bincount(labels[without.kept], minlength=3)
    share = n_keep * np.array([300, 60, 40]) / 400
    assert (starved[1:] < 0.5 * share[1:]).any()  # the case the floor is for
    floored = get_selector("dual_beta", hard_cutoff="none")(data, Budget(n_keep=n_keep))
    counts = np.bincount(labels[floored.kept], minlength=3)
    assert len(floored.kept) == n_keep
    assert (counts >= np.floor(0.5 * share)).all()
    assert floored.info["floor_lifted"] and floored.info["class_floor"] == 0.5
    with pytest.raises(InvalidArgumentError, match=r"`class_floor` must be a number in \[0, 1\], got 2\. It is the least share"):
        get_selector("dual_beta", class_floor=2)


def test_the_class_plan_adds_the_rest_of_the_budget_to_the_floors_by_hand():
    # 3 classes of 100 rows, 60 kept, weights 4 / 1.5 / 0.5 per row and proportional inclusion: p = w / 10, so
    # DUAL-Beta alone keeps m = 40 / 15 / 5. At trust 0.5 the targets are t = 0.5 m + 0.5 · 20 = 30 / 17.5 / 12.5;
    # the floors ⌊0.5 · 20⌋ = 10 each; the rest, 30, goes by t: 15 / 8.75 / 6.25, so 25 / 18.75 / 16.25 -> 25 / 19 / 16
    # (largest remainders). At trust 1 the targets are m itself and class 2's (5) is under its floor: it is lifted,
    # and every class keeps 10 + 30 · (40 / 15 / 5) / 60 = 30 / 17.5 / 12.5 -> 30 / 18 / 12. Without a floor and at
    # trust 1 the draw is unstratified (no plan).
    labels = np.repeat([0, 1, 2], 100)
    weights = np.repeat([4.0, 1.5, 0.5], 100)
    data = SelectionInputs(labels=labels, scores=np.ones(300), seed=0, aux={"p_mean": np.full(300, 0.5)})
    selector = get_selector("dual_beta", inclusion="proportional")
    assert selector.class_plan(data, weights, 60, 0.5) == ({0: 25, 1: 19, 2: 16}, [], [])
    assert selector.class_plan(data, weights, 60, 1.0) == ({0: 30, 1: 18, 2: 12}, [2], [])
    assert get_selector("dual_beta", inclusion="proportional", class_floor=0.0).class_plan(data, weights, 60, 1.0) == (
        None, [], [])


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


def noise_and_signal_records(tmp_path, epochs: int = 6):
    """Two synthetic runs over the same 3 unbalanced classes (150 / 100 / 50 rows): in `signal` every row keeps its
    difficulty across epochs; in `noise` each epoch's true-class probabilities are shuffled between the rows, so
    the scores carry no information about the rows (both runs fit their labels well beyond chance)."""
    from record_utils import logits_for, synthetic_record

    labels = np.repeat([0, 1, 2], [150, 100, 50])
    rng = np.random.default_rng(0)
    base = rng.uniform(0.35, 0.98, len(labels))

    def record(name, p_of_epoch):
        presentations = []
        for e in range(epochs):
            p = p_of_epoch(e)
            order = rng.permutation(len(labels))
            presentations.append([(int(i), logits_for(float(p[i]), int(labels[i]), 3)) for i in order])
        return synthetic_record(tmp_path / name, labels, presentations, num_classes=3)

    signal = record("signal", lambda e: np.clip(base + rng.normal(0, 0.02, len(labels)), 0.01, 0.99))
    noise = record("noise", lambda e: rng.permutation(base))
    dataset = datasets.Dataset.from_dict({"label": labels.tolist()})
    return signal, noise, dataset, labels


@pytest.mark.parametrize("ratio, quota, starved", [(0.5, [75, 50, 25], False), (0.9, [15, 10, 5], True)])
def test_noise_scores_lead_to_a_stratified_selection_and_a_logged_reason(tmp_path, caplog, ratio, quota, starved):
    signal, noise, dataset, labels = noise_and_signal_records(tmp_path)
    with caplog.at_level(logging.INFO, logger="hf_prune"):
        result = HFPruner(record=noise.path, dataset=dataset).select(ratio)
    selection = result.info["selection"]
    reliability = selection["self_check"]["reliability"]
    assert reliability < 0.15
    # 150 steps per epoch over 6 epochs: at 0.5 the subset gets 450 steps and the gate finds the halves' agreement
    # within chance (trust 0); at 0.9, 90 steps (step-starved), the trust is the reliability itself.
    assert selection["trust"] == pytest.approx(reliability if starved else 0.0)
    assert "trusts its scores at" in caplog.text and "class-stratified uniform" in caplog.text
    if not starved:
        assert "do not agree on which rows are hard beyond chance" in caplog.text
    # Stratified: every class keeps its proportional share, and within a class the kept rows cover easy and hard
    # rows alike (about half of them above the class's median difficulty), as a stratified random draw does.
    np.testing.assert_array_equal(np.bincount(labels[result.kept]), quota)
    p_mean = np.asarray(HFPruner(record=noise.path, dataset=dataset).compute_score().aux["p_mean"])

    def share_above_median(kept, c):
        members = np.flatnonzero(labels == c)
        return (p_mean[np.intersect1d(kept, members)] > np.median(p_mean[members])).mean()

    for c in range(3):
        assert 0.4 <= share_above_median(result.kept, c) <= 0.6
    # The same scores taken at face value (no shrinkage, no floor) skew the draw at 90 %: the test can fail.
    raw = HFPruner(record=noise.path, dataset=dataset, shrink="none", class_floor=0.0).select(0.9)
    assert max(abs(share_above_median(raw.kept, c) - 0.5) for c in range(3)) > 0.2
    # A run whose rows keep their difficulty across epochs is trusted (fully, through the gate, when not starved).
    trusted = HFPruner(record=signal.path, dataset=dataset).select(ratio).info["selection"]
    assert trusted["trust"] > 0.9 and (starved or trusted["trust"] == 1.0)


@pytest.mark.parametrize("reliability, n", [(0.15, 300), (0.05, 300), (0.31, 1601), (0.02, 60000)])
def test_reliability_gate_is_fishers_z_test_by_hand(reliability, n):
    """The gate tests the halves' correlation `r = ρ / (2 − ρ)` against 0: `z = atanh(r)·sqrt(n − 3)`, one-sided."""
    import math

    from hf_prune.selection.sampling import TRUST_GATE_ALPHA, reliability_gate

    r = reliability / (2 - reliability)
    z = 0.5 * math.log((1 + r) / (1 - r)) * math.sqrt(n - 3)
    p = 0.5 * math.erfc(z / math.sqrt(2))
    beyond, p_value = reliability_gate(reliability, n)
    assert p_value == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert beyond == (p < TRUST_GATE_ALPHA)
    # Hand values: 0.15 over 300 rows, z = 1.400, p = 0.081 (not beyond chance); 0.31 over 1601 rows, z = 7.42.
    if (reliability, n) == (0.15, 300):
        assert round(z, 3) == 1.400 and not beyond
    if (reliability, n) == (0.31, 1601):
        assert round(z, 2) == 7.42 and beyond


@pytest.mark.parametrize("shrink, ratio, expected", [
    ("gate", 0.5, 1.0),            # 120 steps (not starved), reliability 0.6 over 300 rows beyond chance: followed
    ("gate", 0.7, 0.6),            # 72 steps: step-starved, Kelley's shrinkage
    ("reliability", 0.5, 0.6),     # shrinkage at every ratio (C1-C7)
    ("none", 0.7, 1.0),
])
def test_trust_follows_the_gate_except_for_step_starved_subsets(shrink, ratio, expected):
    data = late_inputs()
    data.aux_info["self_check"].update(reliability=0.6, steps_per_epoch=24)  # (1 − r)·10 epochs × 24 steps
    out = get_selector("dual_beta", shrink=shrink)(data, Budget(n_keep=round((1 - ratio) * 300)))
    assert out.info["trust"] == pytest.approx(expected)
    assert out.info["step_starved"] == (ratio == 0.7)
    if shrink == "gate":
        assert ("step-starved" in out.info["trust_reason"]) == (expected < 1.0)
        assert out.info["trust_rule"] == ("gate" if expected == 1.0 else "step-starved")
        # The gate's p-value is recorded: Fisher's z of r = 0.6 / 1.4 over 300 rows, far beyond chance.
        assert (out.info["trust_p_value"] is None) == (expected < 1.0)
        if expected == 1.0:
            assert 0.0 < out.info["trust_p_value"] < 1e-10
    with pytest.raises(InvalidArgumentError, match="`shrink` must be 'gate', 'reliability' or 'none'"):
        get_selector("dual_beta", shrink="kelley")


@pytest.mark.parametrize("recorded, warns", [(5, True), (10, False)])
def test_following_a_short_record_is_flagged(recorded, warns, caplog):
    data = late_inputs()  # 10 planned epochs
    # 5 × 24 = 120 recorded steps: more than STARVED_STEPS, so the gate decides, and following a short record warns.
    data.aux_info["self_check"].update(reliability=0.6, steps_per_epoch=24, recorded_epochs=recorded)
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        out = get_selector("dual_beta")(data, Budget(n_keep=150))
    assert out.info["trust"] == 1.0 and out.info["trust_rule"] == "gate"
    assert ("scores read from the first 5 of the recipe's 10 epochs" in caplog.text) == warns
    assert ("compare_with_random" in caplog.text) == warns


@pytest.mark.parametrize("shrink", ["gate", "reliability"])
@pytest.mark.parametrize("recorded, per_epoch, planned, refused, gate_rule", [
    (4, 25.0, 10.0, "100 optimizer steps", None),   # a short record of 100 steps: at the bound, not followed
    (4, 24.0, 10.0, "96 optimizer steps", None),
    (2, 100.0, 10.0, "less than a third", None),    # 200 steps, but a fifth of the schedule
    (3, 40.0, 9.0, None, "gate"),                   # exactly a third of the schedule, 120 steps: followed
    (5, 24.0, 10.0, None, "gate"),                  # half the schedule, 120 steps: the gate (or the shrinkage) decides
    (10, 5.0, 10.0, None, "step-starved"),  # 50 steps, but the whole recipe: not a short record (the 25-step
])                                          # subset is step-starved: Kelley's shrinkage)
def test_a_short_record_of_few_steps_is_not_followed(shrink, recorded, per_epoch, planned, refused, gate_rule,
                                                      caplog):
    data = late_inputs()
    data.aux_info["self_check"].update(reliability=0.6, steps_per_epoch=per_epoch, recorded_epochs=recorded,
                                       planned_epochs=planned)
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        out = get_selector("dual_beta", shrink=shrink, late_rows="keep")(data, Budget(n_keep=150))
    assert (out.info["trust_rule"] == "short-record") == (refused is not None)
    if refused:
        assert out.info["trust"] == 0.0
        assert refused in out.info["trust_reason"] and refused in caplog.text
        assert "Record at least a third of the recipe's epochs and more than 100 optimizer steps" in caplog.text
        # Trust 0: the class-stratified uniform draw, 50 of each class of 100.
        np.testing.assert_array_equal(np.bincount(data.labels[out.kept]), [50, 50, 50])
    else:
        rule = gate_rule if shrink == "gate" else "reliability"
        assert out.info["trust_rule"] == rule
        assert out.info["trust"] == pytest.approx(1.0 if rule == "gate" else 0.6)
    # Without shrinkage the scores are followed whatever the record.
    assert get_selector("dual_beta", shrink="none")(data, Budget(n_keep=150)).info["trust"] == 1.0


def test_extrapolated_scores_are_trusted_at_their_fit_even_where_the_gate_would_follow_them():
    data = late_inputs()
    # 0.5 of 10 epochs at 24 steps: 120 steps, not starved. A split-half 0.6 would pass the gate (trust 1); the
    # extrapolation's out-of-sample reliability q² = 0.36 is the trust instead.
    data.aux_info["self_check"].update(reliability=0.36, extrapolation_fit=0.6, steps_per_epoch=24)
    out = get_selector("dual_beta")(data, Budget(n_keep=150))
    assert out.info["trust"] == pytest.approx(0.36) and out.info["trust_rule"] == "extrapolated"
    assert not out.info["step_starved"]


@pytest.mark.parametrize("reliability", [float("nan"), float("inf")])
def test_a_reliability_that_is_no_number_counts_as_unmeasurable(reliability, caplog):
    data = late_inputs()
    data.aux_info["self_check"].update(reliability=reliability, steps_per_epoch=24)
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        out = get_selector("dual_beta")(data, Budget(n_keep=150))
    assert out.info["trust"] == 0.0 and out.info["trust_rule"] == "unmeasurable"
    assert "not a number" in out.info["trust_reason"] and "cannot be measured" in caplog.text
    np.testing.assert_array_equal(np.bincount(data.labels[out.kept]), [50, 50, 50])


def test_the_gate_needs_four_rows():
    from hf_prune.selection.sampling import reliability_gate

    assert reliability_gate(1.0, 3) == (False, 1.0)
    assert reliability_gate(1.0, 4)[0]  # r capped just below 1: z = atanh(1 − 1e-12)·1 ≈ 14


def test_trust_mixes_inclusion_probabilities_by_hand():
    """With trust `ρ` each row's inclusion probability is `ρ·p_i + (1 − ρ)·k/n` (Kelley's shrinkage of the design):
    over many systematic draws the empirical frequencies match it."""
    from hf_prune.selection.sampling import DualBetaSelector

    selector = DualBetaSelector(class_floor=0.0, hard_cutoff="none")
    weights = np.array([8.0, 4.0, 2.0, 1.0, 1.0, 0.5, 0.25, 0.25])
    p_bar = np.linspace(0.1, 0.9, len(weights))
    rho, count = 0.4, 3
    expected = rho * selector.probabilities(weights, count) + (1 - rho) * count / len(weights)
    rng = np.random.default_rng(0)
    hits = np.zeros(len(weights))
    draws = 20000
    for _ in range(draws):
        hits[selector.draw(np.arange(len(weights)), weights, p_bar, count, rng, rho)] += 1
    np.testing.assert_allclose(hits / draws, expected, atol=0.015)
    assert expected.sum() == pytest.approx(count)


def test_the_held_out_gap_decides_the_regime_when_the_run_has_an_eval_set():
    """The memorisation regime is read from the eval gap when the scoring run recorded one, else from the
    prequential gap; the selection says which."""
    n = 40
    labels = np.repeat([0, 1], n // 2)
    p_mean = np.linspace(0.05, 0.95, n)
    memorized = (np.argsort(np.argsort(p_mean)) < 12).astype(float)  # a prequential gap of 0.3: above 0.15
    selector = get_selector("dual_beta")
    for eval_gap, applies, source in ((None, True, "prequential"), (0.02, False, "eval"), (0.3, True, "eval")):
        inputs = SelectionInputs(scores=np.ones(n), labels=labels, seed=0,
                                 aux={"p_mean": p_mean, "memorized": memorized},
                                 aux_info={"self_check": {"eval_gap": eval_gap, "reliability": 1.0}})
        info = selector(inputs, Budget(n_keep=20)).info
        assert (info["cutoff_applied"], info["regime_signal"]) == (applies, source)


def test_scores_without_a_self_check_are_not_followed(caplog):
    # Scores that carry no self-check (computed elsewhere, or saved by an older version) cannot be checked: the
    # default draws every class's share uniformly, whatever the scores say, and says why.
    labels = np.repeat([0, 1], [60, 40])
    p_mean = np.linspace(0.01, 0.99, 100)
    unchecked = SelectionInputs(labels=labels, scores=p_mean.copy(), aux={"p_mean": p_mean}, seed=0)
    with caplog.at_level("WARNING", logger="hf_prune"):
        out = get_selector("dual_beta")(unchecked, Budget(n_keep=50))
    assert out.info["trust"] == 0.0 and "the scores carry no self-check" in out.info["trust_reason"]
    assert "does not follow them" in caplog.text
    np.testing.assert_array_equal(np.bincount(labels[out.kept]), [30, 20])
    # Inclusion probabilities are uniform within a class: over many draws every row is kept about half the time.
    counts = np.zeros(100)
    for seed in range(400):
        data = SelectionInputs(labels=labels, scores=p_mean.copy(), aux={"p_mean": p_mean}, seed=seed)
        counts[get_selector("dual_beta")(data, Budget(n_keep=50)).kept] += 1
    assert np.abs(counts / 400 - 0.5).max() < 0.1


def test_learned_epoch_by_hand(tmp_path):
    from record_utils import logits_for, synthetic_record

    from hf_prune.scores.dynamics import learned_epoch

    # Correct (p 0.9) or wrong (0.1) at each of 3 epochs: learned for good after 0 / 1 / 2 / 3 / 3 epochs.
    pattern = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 0]])
    labels = np.array([0, 1, 0, 1, 0])
    epochs = [[(i, logits_for(0.9 if pattern[i, e] else 0.1, labels[i])) for i in range(5)] for e in range(3)]
    record = synthetic_record(tmp_path / "r", labels, epochs, num_classes=2)
    np.testing.assert_array_equal(learned_epoch(record), [0, 1, 2, 3, 3])
    np.testing.assert_array_equal(learned_epoch(record, 2), [0, 1, 2, 0, 2])


def late_inputs(planned: float | None = 10.0, recorded: int = 10) -> SelectionInputs:
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 100)
    check = {"reliability": 1.0, "recorded_epochs": recorded, "planned_epochs": planned}
    return SelectionInputs(labels=labels, scores=rng.random(300) + 0.01, seed=2, aux_info={"self_check": check},
                           aux={"p_mean": rng.uniform(0.05, 0.95, 300),
                                "learned_epoch": rng.integers(0, 5, 300).astype(np.float64)})


@pytest.mark.parametrize("ratio, options, fires", [
    (0.9, {}, True),                       # (1 − 0.9)·10 = 1 planned epoch of steps: at most one
    (0.7, {}, False),                      # 3 epochs' worth
    (0.9, {"subset_epochs": 20}, False),   # the user will train the subset twice as long: 2 epochs' worth
    (0.8, {"subset_epochs": 5}, True),     # 1 epoch's worth
])
def test_late_rows_get_no_weight_only_when_the_subset_gets_at_most_one_epoch(ratio, options, fires):
    data = late_inputs()
    late = data.aux["learned_epoch"] > 1
    n_keep = round((1 - ratio) * 300)
    out = get_selector("dual_beta", **options)(data, Budget(n_keep=n_keep))
    keep = get_selector("dual_beta", late_rows="keep", **options)(data, Budget(n_keep=n_keep))
    assert len(out.kept) == n_keep
    assert out.info["subset_recorded_epochs"] == pytest.approx((1 - ratio) * options.get("subset_epochs", 10))
    if fires:
        assert out.info["late_set_aside"] == late.sum() and not late[out.kept].any()
        assert late[keep.kept].any()  # without the rule, late rows are drawn at these weights
        weights, _, _ = get_selector("dual_beta", **options).weights(data, 1 - n_keep / 300)
        plain, _, _ = get_selector("dual_beta", late_rows="keep", **options).weights(data, 1 - n_keep / 300)
        np.testing.assert_array_equal(weights, np.where(late, 0.0, plain))
    else:
        assert out.info["late_set_aside"] == 0
        np.testing.assert_array_equal(out.kept, keep.kept)


def test_uniform_design_by_hand():
    from hf_prune.selection.sampling import uniform_design

    np.testing.assert_allclose(uniform_design(4, 2), [0.5] * 4)
    mask = np.array([True, False, True, True, False])
    np.testing.assert_allclose(uniform_design(5, 2, mask), [2 / 3, 0, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(uniform_design(5, 4, mask), [1, 0.5, 1, 1, 0.5])  # 3 eligible cannot fill 4
    assert uniform_design(5, 4, mask).sum() == pytest.approx(4)


@pytest.mark.parametrize("sampling", ["systematic", "random"])
def test_late_rows_get_no_part_of_a_step_starved_subsets_uniform_share(sampling):
    """A step-starved subset is drawn at trust ρ' = ρ < 1: the late rows are out of the uniform part of the mixture
    too (candidate C10), so none is drawn while the other rows of its class can fill the class's count. Before C10,
    the uniform part drew them at random's rate."""
    data = late_inputs()
    data.aux_info["self_check"].update(reliability=0.6, steps_per_epoch=24)  # 72 steps at 0.7: trust 0.6
    late = data.aux["learned_epoch"] > 3
    for seed in range(5):
        data.seed = seed
        out = get_selector("dual_beta", sampling=sampling)(data, Budget(n_keep=90))
        assert out.info["trust"] == pytest.approx(0.6) and out.info["late_set_aside"] == late.sum() > 0
        assert len(out.kept) == 90 and not late[out.kept].any()
    # The same draw with every row eligible (the rule off) does draw late rows at these weights.
    kept = np.concatenate([get_selector("dual_beta", sampling=sampling, late_rows="keep")(
        data, Budget(n_keep=90)).kept for data.seed in range(5)])
    assert late[kept].sum() > 0


def test_scores_not_followed_leave_the_late_rows_in_the_random_sample():
    """Trust 0 (here a record too short to follow): a class-stratified random sample of every row, the late rows
    included, since `learned_epoch` comes from the same record whose scores are not followed."""
    data = late_inputs(planned=10.0, recorded=3)
    data.aux_info["self_check"].update(reliability=0.6, steps_per_epoch=24)  # 3 of 10 epochs, 72 steps: short
    data.aux["learned_epoch"] = np.random.default_rng(1).integers(0, 4, 300).astype(np.float64)
    kept = []
    for data.seed in range(5):
        out = get_selector("dual_beta")(data, Budget(n_keep=30))  # 1 epoch's worth: rows learned after epoch 1 late
        assert out.info["trust"] == 0.0 and out.info["trust_rule"] == "short-record"
        # Nothing is set aside (the info, log and card say so), though the subset is step-starved with a horizon.
        assert out.info["late_set_aside"] == 0 and out.info["late_horizon_epochs"] == 1 and out.info["step_starved"]
        assert np.bincount(data.labels[out.kept]).tolist() == [10, 10, 10]
        kept.append(out.kept)
    late = data.aux["learned_epoch"] > out.info["late_horizon_epochs"]
    share = late[np.concatenate(kept)].mean()
    assert abs(share - late.mean()) < 0.1  # random's rate (late rows are about a half of all rows here)


def test_late_rows_fill_a_class_that_its_other_rows_cannot():
    data = late_inputs()
    data.aux_info["self_check"].update(reliability=0.6, steps_per_epoch=24)
    # Class 0 has only 5 rows learned within 3 epochs; it is planned more than that (its share of 90 is 30).
    data.aux["learned_epoch"][:95] = 4.0
    out = get_selector("dual_beta")(data, Budget(n_keep=90))
    kept0 = out.kept[data.labels[out.kept] == 0]
    assert len(kept0) > 5 and set(range(95, 100)) <= set(kept0.tolist())  # every eligible row, then late ones


@pytest.mark.parametrize("ratio, per_epoch, horizon", [
    (0.7, 20, 3),     # 3 epochs' worth, 60 optimizer steps: step-starved, rows learned after epoch 3 set aside
    (0.5, 20, 5),     # 5 epochs' worth, exactly 100 steps: still starved
    (0.4, 20, None),  # 6 epochs' worth, 120 steps
    (0.7, None, None),  # the steps per epoch unknown: only the one-epoch rule applies
])
def test_late_rows_get_no_weight_when_the_subset_gets_at_most_100_optimizer_steps(ratio, per_epoch, horizon):
    data = late_inputs()
    data.aux_info["self_check"]["steps_per_epoch"] = per_epoch
    data.aux["learned_epoch"] = np.random.default_rng(5).integers(0, 11, 300).astype(np.float64)
    n_keep = round((1 - ratio) * 300)
    out = get_selector("dual_beta")(data, Budget(n_keep=n_keep))
    keep = get_selector("dual_beta", late_rows="keep")(data, Budget(n_keep=n_keep))
    assert out.info["late_horizon_epochs"] == horizon
    assert out.info["subset_steps"] == (None if per_epoch is None else pytest.approx((1 - ratio) * 10 * per_epoch))
    if horizon is None:
        assert out.info["late_set_aside"] == 0
        np.testing.assert_array_equal(out.kept, keep.kept)
        return
    late = data.aux["learned_epoch"] > horizon
    assert out.info["late_set_aside"] == late.sum() > 0 and late[keep.kept].any()
    # Late rows are drawn only in a class the guard planned above what its other rows can fill.
    assert set(data.labels[out.kept[late[out.kept]]].tolist()) <= set(out.info["late_guarded"])
    weights, _, _ = get_selector("dual_beta").weights(data, 1 - n_keep / 300)
    plain, _, _ = get_selector("dual_beta", late_rows="keep").weights(data, 1 - n_keep / 300)
    np.testing.assert_array_equal(weights, np.where(late, 0.0, plain))


@pytest.mark.parametrize("batch, steps, fires", [
    (16, 90 * 10 / 16, True),   # 90 kept rows x 10 epochs / 16 rows per step: 56 steps, starved
    (8, 90 * 10 / 8, False),    # 112 steps
    (9, 100, True),             # exactly 100 steps: still starved
])
def test_subset_batch_size_counts_the_subset_steps(batch, steps, fires):
    """With `subset_batch_size` the steps are the subset's own (`kept rows × E / batch`), not the scoring run's steps
    per epoch (20 here: 60 steps at 0.7, which alone would always fire)."""
    data = late_inputs()
    data.aux_info["self_check"]["steps_per_epoch"] = 20
    out = get_selector("dual_beta", subset_batch_size=batch)(data, Budget(n_keep=90))
    assert out.info["subset_steps"] == pytest.approx(steps)
    assert out.info["late_horizon_epochs"] == (3 if fires else None)
    assert (out.info["late_set_aside"] > 0) == fires
    with pytest.raises(InvalidArgumentError, match="`subset_batch_size`.*rows per optimizer step"):
        get_selector("dual_beta", subset_batch_size=0)


def test_late_rows_fall_back_to_the_recorded_epochs_and_validate_their_options():
    data = late_inputs(planned=None, recorded=4)  # a record without the schedule: E = the 4 recorded epochs
    out = get_selector("dual_beta")(data, Budget(n_keep=60))  # (1 − 0.8)·4 = 0.8
    assert out.info["late_set_aside"] == (data.aux["learned_epoch"] > 1).sum()
    with pytest.raises(InvalidArgumentError, match="`late_rows` must be 'auto' or 'keep', got 'drop'"):
        get_selector("dual_beta", late_rows="drop")
    with pytest.raises(InvalidArgumentError, match="`subset_epochs` must be .*It is the number of epochs"):
        get_selector("dual_beta", subset_epochs=0)


def test_a_pruned_run_reports_the_late_rows_it_set_aside(tmp_path):
    from record_utils import logits_for, synthetic_record

    from hf_prune import hub

    # 200 rows, 4 epochs: rows 0-39 are wrong until epoch 2, rows 40-59 until epoch 3, the rest right throughout.
    labels = np.tile([0, 1], 100)
    rng = np.random.default_rng(0)
    base = rng.uniform(0.55, 0.95, 200)
    start = np.zeros(200, dtype=int)
    start[:40], start[40:60] = 2, 3

    def p(i, e):
        return float(np.clip(base[i] + rng.normal(0, 0.03), 0.51, 0.99)) if e >= start[i] else 0.2

    epochs = [[(i, logits_for(p(i, e), int(labels[i]))) for i in rng.permutation(200)] for e in range(4)]
    record = synthetic_record(tmp_path / "r", labels, epochs, num_classes=2)
    dataset = datasets.Dataset.from_dict({"label": labels.tolist()})
    result = HFPruner(record=record.path, dataset=dataset).select(0.9)
    np.testing.assert_array_equal(result.aux["learned_epoch"], start)
    selection = result.info["selection"]
    assert selection["late_set_aside"] == 60 and selection["subset_recorded_epochs"] == pytest.approx(0.4)
    assert "the 60 rows the scoring run learned only after its first epoch got no weight" in hub.self_check_sentence(
        result)
    # Batch 2: 100 optimizer steps per epoch, so at 0.5 the subset gets 2 epochs' worth, 200 steps: not starved.
    assert selection["self_check"]["steps_per_epoch"] == 100
    half = HFPruner(record=record.path, dataset=dataset).select(0.5).info["selection"]
    assert half["late_set_aside"] == 0 and half["subset_steps"] == pytest.approx(200)
    # Batch 8: 25 steps per epoch, so at 0.5 the subset gets 50 steps: the rows learned after epoch 2 (40-59) get no
    # weight.
    record = synthetic_record(tmp_path / "r8", labels, epochs, num_classes=2, batch_size=8)
    result = HFPruner(record=record.path, dataset=dataset).select(0.5)
    selection = result.info["selection"]
    assert selection["late_horizon_epochs"] == 2 and selection["late_set_aside"] == 20
    assert selection["subset_steps"] == pytest.approx(50)
    assert not np.isin(np.arange(40, 60), result.kept).any()
    assert ("the 20 rows the scoring run learned only after epoch 2 got no weight (the subset trains for 2.00 of the "
            "run's epochs in steps, about 50 optimizer steps)") in hub.self_check_sentence(result)


@pytest.mark.parametrize("rho", [1.0, 0.57])
def test_the_late_row_rule_does_not_plan_a_late_learned_class_below_its_share(rho):
    # Classes of 161 / 54 / 385, the minority learned only in epoch 3 of 4 (38 steps per epoch): at 0.5 / 0.7 the
    # late-row rule fires (76 / 46 steps) and gives the whole minority no weight. Without the guard (C5, the lab's
    # `dual_beta_unguarded`) the minority falls to about its floor; the default plans it at min(its share, its target
    # without the rule), here its share, and reports it.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import lab_selectors  # noqa: F401  (registers `dual_beta_unguarded`)

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [161, 54, 385])
    learned = np.where(labels == 1, 3, rng.integers(0, 2, 600)).astype(np.float64)
    p_mean = np.where(labels == 1, rng.uniform(0.2, 0.5, 600), rng.uniform(0.6, 0.98, 600))
    check = {"reliability": rho, "recorded_epochs": 4, "planned_epochs": 4.0, "steps_per_epoch": 38.0}
    data = SelectionInputs(labels=labels, scores=1.01 - p_mean, seed=1, aux_info={"self_check": check},
                           aux={"p_mean": p_mean, "memorized": np.zeros(600), "learned_epoch": learned})
    for ratio in (0.5, 0.7):
        n_keep = round((1 - ratio) * 600)
        share = n_keep * 54 / 600
        unguarded = get_selector("dual_beta_unguarded")(data, Budget(n_keep=n_keep))
        default = get_selector("dual_beta")(data, Budget(n_keep=n_keep))
        assert unguarded.info["late_set_aside"] >= 54 and len(default.kept) == n_keep
        assert np.bincount(labels[unguarded.kept], minlength=3)[1] < 0.75 * share
        assert np.bincount(labels[default.kept], minlength=3)[1] >= share - 2
        assert default.info["late_guarded"] == [1] and unguarded.info["late_guarded"] == []
    # No late rows: nothing is guarded and the selection is C5's, row for row.
    data.aux["learned_epoch"] = np.zeros(600)
    np.testing.assert_array_equal(get_selector("dual_beta")(data, Budget(n_keep=180)).kept,
                                  get_selector("dual_beta_unguarded")(data, Budget(n_keep=180)).kept)


def test_a_pruned_run_reports_the_class_the_late_row_guard_kept(tmp_path):
    from record_utils import logits_for, synthetic_record

    from hf_prune import hub

    # 200 rows: classes 0 / 1 of 90 rows learned from the start, class 2 (20 rows) only in epoch 3 of 4. Batch 8: 25
    # steps per epoch, so at 0.5 the subset gets 50 steps and the rows learned after epoch 2 (all of class 2) get no
    # weight; the guard still plans class 2 at its share (10 rows) and the card says so.
    labels = np.repeat([0, 1, 2], [90, 90, 20])
    rng = np.random.default_rng(0)
    base = rng.uniform(0.55, 0.95, 200)
    start = np.where(labels == 2, 3, 0)

    def p(i, e):
        return float(np.clip(base[i] + rng.normal(0, 0.03), 0.51, 0.99)) if e >= start[i] else 0.2

    epochs = [[(i, logits_for(p(i, e), int(labels[i]), 3)) for i in rng.permutation(200)] for e in range(4)]
    record = synthetic_record(tmp_path / "r", labels, epochs, num_classes=3, batch_size=8)
    dataset = datasets.Dataset.from_dict({"label": labels.tolist()})
    result = HFPruner(record=record.path, dataset=dataset).select(0.5)
    selection = result.info["selection"]
    assert selection["late_set_aside"] == 20 and selection["late_guarded"] == [2]
    assert np.bincount(labels[result.kept], minlength=3)[2] >= 9
    assert "class(es) [2] were planned at their share" in hub.self_check_sentence(result)


def test_class_quota_none_turns_the_floor_off_and_says_so():
    data = late_inputs()
    data.class_quota = "none"
    out = get_selector("dual_beta", shrink="none")(data, Budget(n_keep=90))
    assert out.info["class_floor"] == 0.0 and out.info["floor_lifted"] == []
    assert get_selector("dual_beta", shrink="none")(late_inputs(), Budget(n_keep=90)).info["class_floor"] == 0.5
