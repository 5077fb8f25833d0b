"""Scalar selectors: exact budgets, quotas, determinism, CCS and DUAL-Beta by their definitions, registry contract."""

from __future__ import annotations

import numpy as np
import pytest

from hf_prune.errors import InvalidArgumentError, SelectionError
from hf_prune.selection import Budget, SelectionInputs, get_selector, list_selectors
from hf_prune.selection.base import allocate, keep_count
from hf_prune.selection.sampling import (
    beta_parameters,
    inclusion_probabilities,
    stratified_allocation,
    successive_inclusion_probabilities,
)


def reference_dual_beta(**options):
    """`dual_beta` with DUAL's reference draw as the base (the selector's defaults are the library policy's)."""
    base = {"sampling": "random", "hard_cutoff": "none", "cutoff_scale": "gap", "inclusion": "proportional",
            "class_floor": 0.0}
    return get_selector("dual_beta", **{**base, **options})


def inputs(n=200, classes=4, seed=0, **kw):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    labels[:classes] = np.arange(classes)
    scores = rng.random(n) + 0.1 * labels
    aux = {"p_mean": rng.random(n)}
    vectors = rng.normal(size=(n, 4))
    # Scores of a perfectly reproducible run: `dual_beta` follows them fully (reliability 1); scores without a
    # self-check are not followed at all (tests/test_safety.py, tests/test_default_policy.py).
    kw.setdefault("aux_info", {"self_check": {"reliability": 1.0}})
    return SelectionInputs(labels=labels, scores=scores, vectors=vectors, aux=aux, seed=seed, **kw)


def flag_hardest(data, share):
    """Mark the `share` of rows with the lowest P̄ as memorised (what the `dual` score's flags look like)."""
    n = len(data.labels)
    flagged = np.zeros(n)
    flagged[np.argsort(data.aux["p_mean"])[: int(share * n)]] = 1.0
    data.aux["memorized"] = flagged
    return flagged


def test_keep_count_rounds_half_up():
    assert keep_count(0.4, 50) == 30 and keep_count(0.5, 5) == 2 and keep_count(0.3, 7) == 5


@pytest.mark.parametrize("name", sorted(list_selectors()))
@pytest.mark.parametrize("n_keep", [7, 100, 193])
def test_every_selector_contract(name, n_keep):
    data = inputs(allow_empty_classes=True)
    selector = get_selector(name, **({"time_limit": 2.0} if name == "mip" else {}))
    out = selector(data, Budget(n_keep=n_keep))
    assert len(out.kept) == n_keep and len(np.unique(out.kept)) == n_keep
    assert (np.diff(out.kept) > 0).all() and out.kept.min() >= 0 and out.kept.max() < 200
    again = selector(data, Budget(n_keep=n_keep))
    np.testing.assert_array_equal(out.kept, again.kept)  # deterministic for a seed
    assert isinstance(selector.options(), dict)


@pytest.mark.parametrize("name", ["topk", "random", "greedy", "dual_beta"])
def test_proportional_quota_exact_per_class(name):
    data = inputs(class_quota="proportional", min_per_class=2)
    out = get_selector(name)(data, Budget(n_keep=61))
    sizes = np.bincount(data.labels)
    np.testing.assert_array_equal(np.bincount(data.labels[out.kept], minlength=4), allocate(sizes, 61, np.full(4, 2)))


def test_topk_global_keeps_highest_and_floors():
    data = inputs()
    out = get_selector("topk")(data, Budget(n_keep=50))
    removed = np.setdiff1d(np.arange(200), out.kept)
    assert data.scores[out.kept].min() >= data.scores[removed].max()
    floored = get_selector("topk")(inputs(min_per_class=10), Budget(n_keep=50))
    assert np.bincount(data.labels[floored.kept], minlength=4).min() >= 10
    with pytest.raises(SelectionError, match="`min_per_class=20` over 4 classes needs 80 rows, more than the 50"):
        get_selector("topk")(inputs(min_per_class=20), Budget(n_keep=50))


def test_random_selector_seeds():
    a = get_selector("random")(inputs(seed=1), Budget(n_keep=80)).kept
    b = get_selector("random")(inputs(seed=2), Budget(n_keep=80)).kept
    assert not np.array_equal(a, b)


def test_moderate_keeps_central_band():
    data = inputs()
    out = get_selector("moderate")(data, Budget(n_keep=100))
    ranks = np.argsort(np.argsort(data.scores))
    assert ranks[out.kept].min() == 50 and ranks[out.kept].max() == 149


def test_ccs_allocation_and_cutoff():
    np.testing.assert_array_equal(stratified_allocation(np.array([5, 1, 50, 20]), 30), [5, 1, 12, 12])
    data = inputs()
    out = get_selector("ccs", strata=10, cutoff=0.1)(data, Budget(n_keep=60))
    hardest = np.argsort(-data.scores)[:20]
    assert not np.intersect1d(out.kept, hardest).size  # the 10 % highest scores are cut
    assert out.info["dropped_hardest"] == 20


def test_ccs_auto_cutoff_follows_the_ratio_asked_for():
    # 45 rows at ratio 0.5 keep 22 (an implied ratio of 0.511): the documented tier for 0.5 is no cutoff, and at
    # 0.7 (13 kept, implied 0.711) it is 0.1 of the rows. The implied ratio moved both up a tier.
    from hf_prune.config import selection_budget

    data = inputs(n=45)
    for ratio, dropped in ((0.5, 0), (0.7, 4)):
        out = get_selector("ccs")(data, selection_budget(ratio, None, 45))
        assert (out.info["cutoff"], out.info["dropped_hardest"]) == ({0.5: 0.0, 0.7: 0.1}[ratio], dropped)


def test_ccs_with_one_stratum_is_uniform_random():
    data = inputs(n=60, allow_empty_classes=True)
    counts = np.zeros(60)
    draws = 3000
    for seed in range(draws):
        data.seed = seed
        counts[get_selector("ccs", strata=1, cutoff=0.0)(data, Budget(n_keep=20)).kept] += 1
    frequency = counts / draws
    assert np.abs(frequency - 20 / 60).max() < 0.05
    assert abs(np.corrcoef(frequency, data.scores)[0, 1]) < 0.3


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7, 0.9])
def test_dual_beta_weights_match_the_formula(ratio):
    data = inputs()
    selector = reference_dual_beta(c_d=4)
    weights, p_bar, params = selector.weights(data, ratio)
    anchor = np.clip(data.aux["p_mean"], 1e-3, 1 - 1e-3)[np.argsort(-data.scores, kind="stable")[:10]].mean()
    beta = 15 * (1 - anchor) * (1 - ratio**4)
    assert params["beta"] == pytest.approx(beta) and params["alpha"] == pytest.approx(16 - beta)
    assert beta_parameters(ratio, anchor, 4) == pytest.approx((16 - beta, beta))
    expected = p_bar ** (16 - beta - 1) * (1 - p_bar) ** (beta - 1) * data.scores
    np.testing.assert_allclose(weights / weights.sum(), expected / expected.sum(), rtol=1e-9)


@pytest.mark.parametrize(("inclusion", "probabilities"), [("proportional", inclusion_probabilities),
                                                          ("successive", successive_inclusion_probabilities)])
def test_dual_beta_systematic_follows_its_inclusion_probabilities(inclusion, probabilities):
    data = inputs(n=300)
    selector = reference_dual_beta(sampling="systematic", inclusion=inclusion)
    weights, _, _ = selector.weights(data, 0.7)
    target = probabilities(weights, 90)
    counts = np.zeros(300)
    for seed in range(400):
        data.seed = seed
        kept = selector(data, Budget(n_keep=90)).kept
        assert len(np.unique(kept)) == 90
        counts[kept] += 1
    assert np.abs(counts / 400 - target).max() < 0.12
    assert np.corrcoef(counts / 400, target)[0, 1] > 0.97
    assert selector(data, Budget(n_keep=90)).info["inclusion"] == inclusion


def test_successive_inclusion_matches_draws_without_replacement():
    # The reference draw (numpy's choice without replacement, p ∝ w), 20,000 times: its empirical inclusion
    # frequencies against Rosén's formula, and against the proportional design it differs from.
    rng = np.random.default_rng(0)
    weights = rng.gamma(0.5, size=200) + np.r_[np.zeros(190), np.full(10, 3.0)]
    count = 60
    counts = np.zeros(200)
    for _ in range(20000):
        counts[rng.choice(200, size=count, replace=False, p=weights / weights.sum())] += 1
    empirical = counts / 20000
    successive = successive_inclusion_probabilities(weights, count)
    proportional = inclusion_probabilities(weights, count)
    assert successive.sum() == pytest.approx(count)
    assert np.abs(empirical - successive).max() < 0.03
    assert np.abs(empirical - proportional).max() > 0.08  # the designs differ, and the test can tell them apart
    # Lighter rows are kept more than in proportion to their weight.
    light = weights < np.quantile(weights, 0.2)
    assert successive[light].sum() > proportional[light].sum()
    # Budgets at or above the rows of positive weight: every such row, the rest spread over the others.
    weights[:50] = 0.0
    np.testing.assert_allclose(successive_inclusion_probabilities(weights, 170),
                               np.r_[np.full(50, 20 / 50), np.ones(150)])
    # Weights beyond the float range (1e-320 against 1): the heavy row for sure, the light ones evenly.
    extreme = successive_inclusion_probabilities(np.r_[1.0, np.full(100, 1e-320)], 50)
    assert extreme.sum() == pytest.approx(50) and extreme[0] == 1.0
    np.testing.assert_allclose(extreme[1:], 0.49)


def test_dual_beta_needs_p_mean():
    data = inputs()
    data.aux = {}
    with pytest.raises(SelectionError, match="needs the mean true-class probability"):
        reference_dual_beta()(data, Budget(n_keep=50))


@pytest.mark.parametrize(("name", "options", "message"), [
    ("dual_beta", {"c_d": -1}, "`c_d` must be a positive number"),
    # infinity is no setting a saved result can hold (JSON writes it as null and the result would not load)
    ("dual_beta", {"c_d": float("inf")}, "`c_d` must be a positive"),
    ("dual_beta", {"subset_epochs": float("inf")}, "`subset_epochs` must be a positive"),
    ("mip", {"time_limit": float("inf")}, "`time_limit` must be"),
    ("dual_beta", {"inclusion": "poisson"}, "`inclusion` must be 'proportional' or 'successive'"),
    ("dual_beta", {"sampling": "stratified"}, "`sampling` must be"),
    ("ccs", {"cutoff": 1.5}, "`cutoff` must be 'auto' or a fraction"),
    ("ccs", {"strata": 0}, "`strata` must be a positive integer"),
    ("topk", {"colour": 1}, "takes no option"),
    # the benchmark's historical variants (scripts/lab_selectors.py), not options of the library's selector
    ("dual_beta", {"hard_side": "flat"}, r"`dual_beta` takes no option\(s\) \['hard_side'\]"),
    ("dual_beta", {"after_cutoff": "uniform"}, r"`dual_beta` takes no option\(s\) \['after_cutoff'\]"),
])
def test_bad_selector_options(name, options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        get_selector(name, **options)


def test_vector_selector_needs_vectors():
    data = inputs()
    data.vectors = None
    with pytest.raises(SelectionError, match="needs per-row influence vectors"):
        get_selector("greedy")(data, Budget(n_keep=50))


@pytest.mark.parametrize("class_quota", ["none", "proportional"])
def test_dual_beta_hard_cutoff_sets_memorised_rows_aside(class_quota):
    data = inputs(n=400, class_quota=class_quota)
    flagged = flag_hardest(data, 0.25)  # the 100 lowest-P̄ rows
    selector = reference_dual_beta(sampling="systematic", hard_cutoff="auto")
    weights, _, params = selector.weights(data, 0.5)
    assert params["set_aside"] == 100 and not weights[flagged > 0].any() and weights[flagged == 0].any()
    # The anchor is taken among the rows that are not set aside.
    rest = np.flatnonzero(flagged == 0)
    top = rest[np.argsort(-data.scores[rest], kind="stable")[:10]]
    assert params["anchor_p"] == pytest.approx(np.clip(data.aux["p_mean"][top], 1e-3, 1 - 1e-3).mean())
    kept = selector(data, Budget(n_keep=200)).kept
    assert len(np.unique(kept)) == 200 and not flagged[kept].any()
    # A budget larger than the rest keeps every other row and fills up from the set-aside rows.
    kept = selector(data, Budget(n_keep=350)).kept
    assert len(np.unique(kept)) == 350 and flagged[kept].sum() == 50
    if class_quota == "proportional":  # the cutoff does not change the class counts of the quota
        plain = reference_dual_beta(sampling="systematic")(data, Budget(n_keep=350)).kept
        np.testing.assert_array_equal(np.bincount(data.labels[kept], minlength=4),
                                      np.bincount(data.labels[plain], minlength=4))


def test_dual_beta_hard_cutoff_needs_the_flags():
    data = inputs()
    with pytest.raises(SelectionError, match="needs the memorisation flags"):
        reference_dual_beta(hard_cutoff="auto")(data, Budget(n_keep=50))
    with pytest.raises(InvalidArgumentError, match="`hard_cutoff` must be"):
        reference_dual_beta(hard_cutoff="yes")
    # The default ("regime") falls back to the reference behaviour, with a warning, on scores made without flags.
    kept = reference_dual_beta(sampling="systematic", hard_cutoff="regime")(data, Budget(n_keep=50)).kept
    np.testing.assert_array_equal(kept, reference_dual_beta(sampling="systematic")(data, Budget(n_keep=50)).kept)
    with pytest.raises(InvalidArgumentError, match="`regime_gap` must be"):
        reference_dual_beta(hard_cutoff="regime", regime_gap=2)


@pytest.mark.parametrize("gap", [0.1, 0.25])
def test_dual_beta_regime_switch(gap):
    # "regime": below the threshold the selection is exactly that of hard_cutoff="none"; above it, the flagged rows
    # are set aside and every class is sampled on its own.
    data = inputs(n=400)
    flagged = flag_hardest(data, gap)
    regime = reference_dual_beta(sampling="systematic", hard_cutoff="regime")(data, Budget(n_keep=120))
    plain = reference_dual_beta(sampling="systematic")(data, Budget(n_keep=120))
    if gap < 0.15:
        np.testing.assert_array_equal(np.sort(regime.kept), np.sort(plain.kept))
        assert regime.info["cutoff_applied"] is False and regime.info["class_quota"] == "none"
    else:
        quota = reference_dual_beta(sampling="systematic", hard_cutoff="auto")
        data.class_quota = "proportional"
        expected = quota(data, Budget(n_keep=120)).kept
        np.testing.assert_array_equal(np.sort(regime.kept), np.sort(expected))
        assert regime.info["cutoff_applied"] is True and regime.info["class_quota"] == "proportional"
        assert regime.info["memorization_gap"] == pytest.approx(gap) and not flagged[regime.kept].any()


@pytest.mark.parametrize("ratio_keep", [(0.5, 200), (0.75, 100), (0.9, 40)])
def test_dual_beta_ratio_scaled_cutoff_sets_aside_the_ratio_share_of_each_class_flags(ratio_keep):
    # cutoff_scale="ratio": in every class, the round(r · flagged_c) flagged rows of lowest P̄ are set aside (hand
    # computed here per class), the other flagged rows stay in the pool; with "gap" every flagged row is set aside.
    ratio, n_keep = ratio_keep
    data = inputs(n=400, class_quota="proportional")
    flagged = np.zeros(400)
    for label in range(4):  # the 30 % lowest-P̄ rows of each class are flagged
        members = np.flatnonzero(data.labels == label)
        flagged[members[np.argsort(data.aux["p_mean"][members])[: int(0.3 * len(members))]]] = 1.0
    data.aux["memorized"] = flagged
    expected = np.zeros(400, dtype=bool)
    for label in range(4):
        members = np.flatnonzero((data.labels == label) & (flagged > 0))
        count = int(np.floor(ratio * len(members) + 0.5))
        expected[members[np.argsort(data.aux["p_mean"][members])[:count]]] = True
    scaled = reference_dual_beta(sampling="systematic", hard_cutoff="auto", cutoff_scale="ratio")
    weights, _, params = scaled.weights(data, ratio)
    assert params["set_aside"] == expected.sum() and params["memorization_gap"] == pytest.approx(flagged.mean())
    assert not weights[expected].any() and weights[~expected].all()
    out = scaled(data, Budget(n_keep=n_keep))
    assert len(np.unique(out.kept)) == n_keep and not expected[out.kept].any()
    assert 0 < expected.sum() < (flagged > 0).sum()  # a strict part of the flags: this is not the "gap" cutoff
    full = reference_dual_beta(sampling="systematic", hard_cutoff="auto")
    assert full.weights(data, ratio)[2]["set_aside"] == (flagged > 0).sum()
    # Below the regime threshold the option changes nothing (the cutoff does not apply).
    regime = reference_dual_beta(sampling="systematic", hard_cutoff="regime", regime_gap=0.5, cutoff_scale="ratio")
    plain = reference_dual_beta(sampling="systematic")
    np.testing.assert_array_equal(regime(data, Budget(n_keep=n_keep)).kept, plain(data, Budget(n_keep=n_keep)).kept)
    with pytest.raises(InvalidArgumentError, match="`cutoff_scale` must be 'gap' or 'ratio'"):
        reference_dual_beta(cutoff_scale="half")


def test_method_random_alone_is_the_class_stratified_baseline():
    """`method="random"` selects with the `random` selector (class-stratified), as the README's baseline says; it
    kept the top of random scores over all classes at once before."""
    from hf_prune.config import resolve_method

    score, selector = resolve_method("random", None, {})
    assert (score.name, selector.name) == ("random", "random")
