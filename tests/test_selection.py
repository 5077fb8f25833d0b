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


@pytest.mark.parametrize("hard_side", ["flat", "tempered"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.9])
def test_dual_beta_hard_side_reweights_only_rows_harder_than_the_anchor(ratio, hard_side):
    # Below the anchor μ*, the log Beta density's drop from its value at μ* is kept in the share `keep`: none for
    # "flat" (the score alone ranks the hard rows), r^c_D for "tempered". Above μ* the weights are the reference's.
    data = inputs()
    weights, _, params = reference_dual_beta(hard_side=hard_side).weights(data, ratio)
    reference = reference_dual_beta().weights(data, ratio)[0]
    p_bar = np.clip(data.aux["p_mean"], 1e-3, 1 - 1e-3)
    alpha, beta, anchor = params["alpha"], params["beta"], params["anchor_p"]
    log_pdf = (alpha - 1) * np.log(p_bar) + (beta - 1) * np.log(1 - p_bar)
    at_anchor = (alpha - 1) * np.log(anchor) + (beta - 1) * np.log(1 - anchor)
    keep = 0.0 if hard_side == "flat" else ratio**4
    easy = p_bar >= anchor
    expected = np.where(easy, log_pdf, at_anchor + keep * (log_pdf - at_anchor))
    expected = np.exp(expected - expected.max()) * data.scores
    np.testing.assert_allclose(weights / weights.sum(), expected / expected.sum(), rtol=1e-9)
    assert 0 < easy.sum() < len(p_bar) and params["hard_side"] == hard_side
    # Above the anchor the two agree up to one common factor; below it the hard rows never weigh less.
    factor = (weights[easy] / reference[easy])[0]
    np.testing.assert_allclose(weights[easy] / reference[easy], factor, rtol=1e-9)
    assert np.all(weights[~easy] >= factor * reference[~easy] * (1 - 1e-12))
    with pytest.raises(InvalidArgumentError, match="`hard_side` must be 'beta', 'flat' or 'tempered'"):
        reference_dual_beta(hard_side="none")


@pytest.mark.parametrize("num_classes", [None, 10])
def test_dual_beta_chance_floor_lifts_only_hard_rows_above_chance(num_classes):
    # hard_floor="chance": rows with P̄ below 1/K (K = num_classes, else labels.max() + 1 = 4 here) keep the
    # reference density; rows between chance and the anchor get the tempered weight, and nothing else changes.
    data = inputs(n=400, num_classes=num_classes)
    chance = 1 / (num_classes or 4)
    ratio = 0.7
    floored, _, params = reference_dual_beta(hard_side="tempered", hard_floor="chance").weights(data, ratio)
    tempered = reference_dual_beta(hard_side="tempered").weights(data, ratio)[0]
    reference = reference_dual_beta().weights(data, ratio)[0]
    p_bar = np.clip(data.aux["p_mean"], 1e-3, 1 - 1e-3)
    below, between = p_bar < chance, (p_bar >= chance) & (p_bar < params["anchor_p"])
    assert below.sum() > 10 and between.sum() > 10 and params["hard_floor"] == "chance"
    factor = floored[~below][0] / tempered[~below][0]  # the floored and tempered weights agree above chance
    np.testing.assert_allclose(floored[~below] / tempered[~below], factor, rtol=1e-9)
    easy = p_bar >= params["anchor_p"]
    to_reference = (floored[easy] / reference[easy])[0]
    np.testing.assert_allclose(floored[below] / reference[below], to_reference, rtol=1e-9)
    assert np.all(tempered[below] / reference[below] > to_reference / factor)  # tempered lifts them, floor does not
    with pytest.raises(InvalidArgumentError, match="`hard_floor` must be 'none' or 'chance'"):
        reference_dual_beta(hard_floor="label_noise")


def test_dual_beta_tempered_hard_side_moves_from_flat_to_the_reference_as_the_ratio_grows():
    # For one hard row (P̄ far below the anchor), its weight relative to the reference's grows towards the flat
    # weight at small ratios and shrinks to the reference's at large ones.
    data = inputs()
    hard = int(np.argmin(data.aux["p_mean"]))
    shares = []
    for ratio in (0.1, 0.5, 0.7, 0.9, 0.99):
        flat = reference_dual_beta(hard_side="flat").weights(data, ratio)[0]
        tempered = reference_dual_beta(hard_side="tempered").weights(data, ratio)[0]
        reference = reference_dual_beta().weights(data, ratio)[0]
        norm = [w / w[np.argmax(data.aux["p_mean"])] for w in (flat, tempered, reference)]
        # log position of the tempered weight between reference (0) and flat (1)
        shares.append(np.log(norm[1][hard] / norm[2][hard]) / np.log(norm[0][hard] / norm[2][hard]))
    np.testing.assert_allclose(shares, [1 - r**4 for r in (0.1, 0.5, 0.7, 0.9, 0.99)], rtol=1e-6)


@pytest.mark.parametrize("gap", [0.1, 0.25])
def test_dual_beta_flat_hard_side_only_without_the_cutoff(gap):
    # When the regime cutoff applies, the cutoff decides the hard side: the selection is exactly that of "beta".
    # Below the threshold the flat hard side changes the weights of the rows harder than the anchor.
    data = inputs(n=400)
    flag_hardest(data, gap)
    options = {"sampling": "systematic", "hard_cutoff": "regime", "cutoff_scale": "ratio"}
    flat = reference_dual_beta(hard_side="flat", **options)
    beta = reference_dual_beta(**options)
    w_flat, _, info = flat.weights(data, 0.5)
    w_beta = beta.weights(data, 0.5)[0]
    assert info["cutoff_applied"] == (gap >= 0.15) and info["hard_side"] == ("beta" if gap >= 0.15 else "flat")
    tempered = reference_dual_beta(hard_side="tempered", **options)
    assert tempered.weights(data, 0.5)[2]["hard_side"] == ("beta" if gap >= 0.15 else "tempered")
    if gap >= 0.15:
        np.testing.assert_array_equal(w_flat, w_beta)
        np.testing.assert_array_equal(flat(data, Budget(n_keep=200)).kept, beta(data, Budget(n_keep=200)).kept)
    else:
        assert not np.allclose(w_flat / w_flat.sum(), w_beta / w_beta.sum())


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


def test_adaptive_uses_the_inclusion_option():
    data = inputs(n=300)
    counts = {}
    for inclusion in ("proportional", "successive"):
        selector = get_selector("adaptive", pool_factor=1.0, inclusion=inclusion)
        assert selector.options()["inclusion"] == inclusion and "sampling" not in selector.options()
        weights, _, _ = selector.weights(data, 0.7)
        counts[inclusion] = np.zeros(300)
        for seed in range(200):
            data.seed = seed
            counts[inclusion][selector(data, Budget(n_keep=90)).kept] += 1
    # The successive design keeps the lighter rows more often than the proportional one.
    light = (weights > 0) & (weights < np.quantile(weights[weights > 0], 0.3))
    assert counts["successive"][light].sum() > 1.2 * counts["proportional"][light].sum()


def test_dual_beta_needs_p_mean():
    data = inputs()
    data.aux = {}
    with pytest.raises(SelectionError, match="needs the mean true-class probability"):
        reference_dual_beta()(data, Budget(n_keep=50))


@pytest.mark.parametrize(("name", "options", "message"), [
    ("dual_beta", {"c_d": -1}, "`c_d` must be a positive number"),
    ("dual_beta", {"inclusion": "poisson"}, "`inclusion` must be 'proportional' or 'successive'"),
    ("dual_beta", {"sampling": "stratified"}, "`sampling` must be"),
    ("ccs", {"cutoff": 1.5}, "`cutoff` must be 'auto' or a fraction"),
    ("ccs", {"strata": 0}, "`strata` must be a positive integer"),
    ("topk", {"colour": 1}, "takes no option"),
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


def test_dual_beta_uniform_after_cutoff_spreads_the_kept_rows_evenly_along_p_bar():
    # after_cutoff="uniform": once the flagged rows are set aside, every other row has inclusion probability
    # n_keep / rest, and systematic sampling along P̄ takes every (rest / n_keep)-th of them, easy to hard.
    data = inputs(n=400, class_quota="none")
    flagged = flag_hardest(data, 0.25)  # the 100 lowest-P̄ rows
    selector = reference_dual_beta(sampling="systematic", hard_cutoff="auto", after_cutoff="uniform")
    out = selector(data, Budget(n_keep=150))
    rest = np.flatnonzero(flagged == 0)
    ranks = np.argsort(np.argsort(data.aux["p_mean"][rest], kind="stable"), kind="stable")  # rank of each rest row
    kept_ranks = np.sort(ranks[np.searchsorted(rest, out.kept)])
    assert len(out.kept) == 150 and not flagged[out.kept].any()
    np.testing.assert_array_equal(np.diff(kept_ranks), np.full(149, 2))
    # Without the cutoff the option changes nothing; the beta default differs from uniform when the cutoff applies.
    plain = reference_dual_beta(sampling="systematic", after_cutoff="uniform")(data, Budget(n_keep=150))
    np.testing.assert_array_equal(plain.kept, reference_dual_beta(sampling="systematic")(data, Budget(n_keep=150)).kept)
    beta = reference_dual_beta(sampling="systematic", hard_cutoff="auto")(data, Budget(n_keep=150))
    assert not np.array_equal(beta.kept, out.kept)
    with pytest.raises(InvalidArgumentError, match="`after_cutoff` must be 'beta' or 'uniform'"):
        reference_dual_beta(after_cutoff="flat")


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
