"""The benchmark's lab selectors (`scripts/lab_selectors.py`): `dual_beta_lab` (`hard_side`, `hard_floor`,
`after_cutoff`) and `adaptive`, by their definitions and against a reference written here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_selection import flag_hardest, inputs, reference_dual_beta

from hf_prune.errors import InvalidArgumentError
from hf_prune.selection import Budget, get_selector
from hf_prune.selection.sampling import DualBetaSelector


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import lab_selectors  # noqa: E402, F401  (registers the lab selectors)


def lab_dual_beta(**options):
    """`dual_beta_lab` on the same reference base as `reference_dual_beta` (DUAL's reference draw)."""
    base = {"sampling": "random", "hard_cutoff": "none", "cutoff_scale": "gap", "inclusion": "proportional",
            "class_floor": 0.0}
    return get_selector("dual_beta_lab", **{**base, **options})


class ReferenceHardSide(DualBetaSelector):
    """The library's `dual_beta` with the hard side and the post-cutoff weights of the historical variants, written
    out from their definition: below the anchor `μ*` the log-weight is `at_anchor + keep·(log_density(P̄) −
    at_anchor)`, `keep = 0` ("flat") or `r^{c_D}` ("tempered"), only for rows with `P̄ ≥ 1/K` under "chance", and
    only where the cutoff does not apply; "uniform" gives every row not set aside the same weight once it does."""

    name = "dual_beta_reference_hard_side"

    def __init__(self, hard_side="beta", hard_floor="none", after_cutoff="beta", **options):
        super().__init__(**options)
        self.hard_side, self.hard_floor, self.after_cutoff = hard_side, hard_floor, after_cutoff

    def weights(self, inputs, ratio):
        _, p_bar, params = super().weights(inputs, ratio)
        set_aside = self.memorised(inputs, ratio)[0]
        alpha, beta, anchor, applies = params["alpha"], params["beta"], params["anchor_p"], params["cutoff_applied"]
        log_density = (alpha - 1) * np.log(p_bar) + (beta - 1) * np.log(1 - p_bar)
        if self.hard_side != "beta" and not applies:
            at_anchor = (alpha - 1) * np.log(anchor) + (beta - 1) * np.log(1 - anchor)
            keep = 0.0 if self.hard_side == "flat" else ratio**self.c_d
            lifted = p_bar < anchor
            if self.hard_floor == "chance":
                lifted = lifted & (p_bar >= 1 / inputs.class_count)
            log_density = np.where(lifted, at_anchor + keep * (log_density - at_anchor), log_density)
        weights = np.exp(log_density - log_density[~set_aside].max()) * np.maximum(inputs.scores, 0.0)
        if applies and self.after_cutoff == "uniform":
            weights = np.ones(len(p_bar))
        weights[set_aside] = 0.0
        return weights, p_bar, params


# The option sets of scripts/benchmark.py's METHODS variants that used the lab options (with the pins of that file).
PINNED = {"class_floor": 0.0, "inclusion": "proportional", "shrink": "none", "regime_from": "prequential"}
REGIME = {**PINNED, "sampling": "systematic", "hard_cutoff": "regime", "cutoff_scale": "ratio"}
LAB_VARIANTS = {
    "flat hard side": {**REGIME, "hard_side": "flat"},
    "tempered hard side": {**REGIME, "hard_side": "tempered"},
    "tempered hard side, chance floor": {**REGIME, "hard_side": "tempered", "hard_floor": "chance"},
    "successive, tempered hard side": {**REGIME, "hard_side": "tempered", "inclusion": "successive"},
    "random draws, tempered hard side": {**REGIME, "hard_side": "tempered", "sampling": "random"},
    "hard cutoff, uniform": {**PINNED, "sampling": "systematic", "hard_cutoff": "auto", "cutoff_scale": "gap",
                             "after_cutoff": "uniform"},
    "ratio-scaled cutoff, uniform": {**PINNED, "sampling": "systematic", "hard_cutoff": "auto",
                                     "cutoff_scale": "ratio", "after_cutoff": "uniform"},
}


@pytest.mark.parametrize("variant", sorted(LAB_VARIANTS))
@pytest.mark.parametrize("gap", [0.1, 0.25])
def test_lab_dual_beta_matches_the_reference_hard_side(variant, gap):
    options = LAB_VARIANTS[variant]
    quota = "proportional" if "uniform" in variant else None
    data = inputs(n=400, class_quota=quota)
    flag_hardest(data, gap)
    lab = get_selector("dual_beta_lab", **options)
    reference = ReferenceHardSide(**options)
    for ratio, n_keep in ((0.3, 280), (0.5, 200), (0.7, 120), (0.9, 40)):
        w_lab, _, info = lab.weights(data, ratio)
        w_reference = reference.weights(data, ratio)[0]
        np.testing.assert_allclose(w_lab, w_reference, rtol=1e-9, atol=1e-300)
        applies = info["cutoff_applied"]
        assert info["hard_side"] == ("beta" if applies else options.get("hard_side", "beta"))
        assert info["hard_floor"] == options.get("hard_floor", "none")
        for seed in (0, 1):
            data.seed = seed
            np.testing.assert_array_equal(lab(data, Budget(n_keep=n_keep)).kept,
                                          reference(data, Budget(n_keep=n_keep)).kept)


@pytest.mark.parametrize("options", [{}, {"sampling": "systematic", "hard_cutoff": "regime",
                                          "cutoff_scale": "ratio"}])
def test_lab_dual_beta_with_its_defaults_is_dual_beta(options):
    # hard_side="beta", hard_floor="none", after_cutoff="beta": the library selector's weights and rows exactly.
    data = inputs(n=400)
    flag_hardest(data, 0.25)
    for ratio, n_keep in ((0.5, 200), (0.9, 40)):
        np.testing.assert_array_equal(lab_dual_beta(**options).weights(data, ratio)[0],
                                      reference_dual_beta(**options).weights(data, ratio)[0])
        np.testing.assert_array_equal(get_selector("dual_beta_lab")(data, Budget(n_keep=n_keep)).kept,
                                      get_selector("dual_beta")(data, Budget(n_keep=n_keep)).kept)
    assert get_selector("dual_beta_lab").options() == {**get_selector("dual_beta").options(), "after_cutoff": "beta",
                                                       "hard_side": "beta", "hard_floor": "none"}


@pytest.mark.parametrize("name", ["dual_beta_lab", "adaptive", "dual_beta_mixed_late"])
def test_lab_selectors_obey_the_selector_contract(name):
    data = inputs(allow_empty_classes=True)
    selector = get_selector(name)
    out = selector(data, Budget(n_keep=100))
    assert len(np.unique(out.kept)) == 100 and (np.diff(out.kept) > 0).all()
    np.testing.assert_array_equal(out.kept, selector(data, Budget(n_keep=100)).kept)


@pytest.mark.parametrize("hard_side", ["flat", "tempered"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.9])
def test_lab_dual_beta_hard_side_reweights_only_rows_harder_than_the_anchor(ratio, hard_side):
    # Below the anchor μ*, the log Beta density's drop from its value at μ* is kept in the share `keep`: none for
    # "flat" (the score alone ranks the hard rows), r^c_D for "tempered". Above μ* the weights are the reference's.
    data = inputs()
    weights, _, params = lab_dual_beta(hard_side=hard_side).weights(data, ratio)
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
        lab_dual_beta(hard_side="none")


@pytest.mark.parametrize("num_classes", [None, 10])
def test_lab_dual_beta_chance_floor_lifts_only_hard_rows_above_chance(num_classes):
    # hard_floor="chance": rows with P̄ below 1/K (K = num_classes, else labels.max() + 1 = 4 here) keep the
    # reference density; rows between chance and the anchor get the tempered weight, and nothing else changes.
    data = inputs(n=400, num_classes=num_classes)
    chance = 1 / (num_classes or 4)
    ratio = 0.7
    floored, _, params = lab_dual_beta(hard_side="tempered", hard_floor="chance").weights(data, ratio)
    tempered = lab_dual_beta(hard_side="tempered").weights(data, ratio)[0]
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
        lab_dual_beta(hard_floor="label_noise")


def test_lab_dual_beta_tempered_hard_side_moves_from_flat_to_the_reference_as_the_ratio_grows():
    # For one hard row (P̄ far below the anchor), its weight relative to the reference's grows towards the flat
    # weight at small ratios and shrinks to the reference's at large ones.
    data = inputs()
    hard = int(np.argmin(data.aux["p_mean"]))
    shares = []
    for ratio in (0.1, 0.5, 0.7, 0.9, 0.99):
        flat = lab_dual_beta(hard_side="flat").weights(data, ratio)[0]
        tempered = lab_dual_beta(hard_side="tempered").weights(data, ratio)[0]
        reference = reference_dual_beta().weights(data, ratio)[0]
        norm = [w / w[np.argmax(data.aux["p_mean"])] for w in (flat, tempered, reference)]
        # log position of the tempered weight between reference (0) and flat (1)
        shares.append(np.log(norm[1][hard] / norm[2][hard]) / np.log(norm[0][hard] / norm[2][hard]))
    np.testing.assert_allclose(shares, [1 - r**4 for r in (0.1, 0.5, 0.7, 0.9, 0.99)], rtol=1e-6)


@pytest.mark.parametrize("gap", [0.1, 0.25])
def test_lab_dual_beta_flat_hard_side_only_without_the_cutoff(gap):
    # When the regime cutoff applies, the cutoff decides the hard side: the selection is exactly that of "beta".
    # Below the threshold the flat hard side changes the weights of the rows harder than the anchor.
    data = inputs(n=400)
    flag_hardest(data, gap)
    options = {"sampling": "systematic", "hard_cutoff": "regime", "cutoff_scale": "ratio"}
    flat = lab_dual_beta(hard_side="flat", **options)
    beta = reference_dual_beta(**options)
    w_flat, _, info = flat.weights(data, 0.5)
    w_beta = beta.weights(data, 0.5)[0]
    assert info["cutoff_applied"] == (gap >= 0.15) and info["hard_side"] == ("beta" if gap >= 0.15 else "flat")
    tempered = lab_dual_beta(hard_side="tempered", **options)
    assert tempered.weights(data, 0.5)[2]["hard_side"] == ("beta" if gap >= 0.15 else "tempered")
    if gap >= 0.15:
        np.testing.assert_array_equal(w_flat, w_beta)
        np.testing.assert_array_equal(flat(data, Budget(n_keep=200)).kept, beta(data, Budget(n_keep=200)).kept)
    else:
        assert not np.allclose(w_flat / w_flat.sum(), w_beta / w_beta.sum())


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


def test_lab_dual_beta_uniform_after_cutoff_spreads_the_kept_rows_evenly_along_p_bar():
    # after_cutoff="uniform": once the flagged rows are set aside, every other row has inclusion probability
    # n_keep / rest, and systematic sampling along P̄ takes every (rest / n_keep)-th of them, easy to hard.
    data = inputs(n=400, class_quota="none")
    flagged = flag_hardest(data, 0.25)  # the 100 lowest-P̄ rows
    selector = lab_dual_beta(sampling="systematic", hard_cutoff="auto", after_cutoff="uniform")
    out = selector(data, Budget(n_keep=150))
    rest = np.flatnonzero(flagged == 0)
    ranks = np.argsort(np.argsort(data.aux["p_mean"][rest], kind="stable"), kind="stable")  # rank of each rest row
    kept_ranks = np.sort(ranks[np.searchsorted(rest, out.kept)])
    assert len(out.kept) == 150 and not flagged[out.kept].any()
    np.testing.assert_array_equal(np.diff(kept_ranks), np.full(149, 2))
    # Without the cutoff the option changes nothing; the beta default differs from uniform when the cutoff applies.
    plain = lab_dual_beta(sampling="systematic", after_cutoff="uniform")(data, Budget(n_keep=150))
    np.testing.assert_array_equal(plain.kept, reference_dual_beta(sampling="systematic")(data, Budget(n_keep=150)).kept)
    beta = reference_dual_beta(sampling="systematic", hard_cutoff="auto")(data, Budget(n_keep=150))
    assert not np.array_equal(beta.kept, out.kept)
    with pytest.raises(InvalidArgumentError, match="`after_cutoff` must be 'beta' or 'uniform'"):
        lab_dual_beta(after_cutoff="flat")




@pytest.mark.parametrize("ratio, horizon", [(0.9, 1), (0.7, 3), (0.3, 7)])
def test_horizon_candidates_set_aside_the_rows_learned_after_the_horizon(ratio, horizon):
    # E = 10 recorded epochs: h = ceil((1 - r) E). `dual_beta_horizon_only` (C3) zeroes exactly those rows and
    # leaves every other weight and the anchor as `dual_beta`'s; `dual_beta_horizon` (C2) sets them aside as
    # memorised rows (the anchor is then taken among the others, and every class is drawn on its own).
    data = inputs(n=400, aux_info={"self_check": {"reliability": 1.0, "recorded_epochs": 10}})
    data.aux["memorized"] = np.zeros(400)
    learned = np.random.default_rng(1).integers(0, 11, 400).astype(np.float64)
    data.aux["learned_epoch"] = learned
    beyond = learned > horizon
    plain_weights, _, plain = get_selector("dual_beta", late_rows="keep").weights(data, ratio)
    weights, _, params = get_selector("dual_beta_horizon_only", late_rows="keep").weights(data, ratio)
    assert params["horizon_epochs"] == horizon and params["beyond_horizon"] == beyond.sum() > 0
    assert not weights[beyond].any() and params["anchor_p"] == plain["anchor_p"]
    np.testing.assert_array_equal(weights[~beyond], plain_weights[~beyond])
    c2_weights, _, c2 = get_selector("dual_beta_horizon", late_rows="keep").weights(data, ratio)
    assert not c2_weights[beyond].any() and c2["cutoff_applied"] and c2["set_aside"] == beyond.sum()
    rest = np.flatnonzero(~beyond)
    top = rest[np.argsort(-data.scores[rest], kind="stable")[:10]]
    assert c2["anchor_p"] == pytest.approx(np.clip(data.aux["p_mean"][top], 1e-3, 1 - 1e-3).mean())


def starved_inputs(epochs: int, per_epoch: float | None, seed: int):
    """400 rows recorded over `epochs` epochs of `per_epoch` optimizer steps, learned for good at random epochs."""
    data = inputs(n=400, aux_info={"self_check": {"reliability": 1.0, "recorded_epochs": epochs,
                                                  "steps_per_epoch": per_epoch}})
    data.aux["memorized"] = np.zeros(400)
    data.aux["learned_epoch"] = np.random.default_rng(seed).integers(0, epochs + 1, 400).astype(np.float64)
    return data


@pytest.mark.parametrize("ratio, epochs, per_epoch, fires", [
    (0.9, 10, None, True), (0.9, 5, None, True), (0.7, 4, None, False), (0.9, 20, None, False), (0.5, 2, None, True),
    (0.3, 10, None, False),
    (0.7, 10, 16, True), (0.5, 10, 16, True), (0.3, 10, 16, False),  # fmnist2k's 16 steps per epoch: 48 / 80 / 112
    (0.7, 4, 50, True), (0.3, 4, 50, False),                          # rotten_tomatoes': 60 / 140 steps
    (0.7, 5, 469, False),                                              # the 60k run's: 704 steps
])
def test_the_default_is_c5_c3_when_step_starved_and_c1_elsewhere(ratio, epochs, per_epoch, fires):
    # The library default's weights (C5's; C7 only adds a class guard to the plan): at most one epoch's worth of
    # steps or at most 100 optimizer steps -> C3's weights, horizon h = max(1, ceil((1 - r)·E)); otherwise C1's
    # (`dual_beta` with `late_rows="keep"`), untouched.
    data = starved_inputs(epochs, per_epoch, seed=2)
    weights, _, params = get_selector("dual_beta").weights(data, ratio)
    plain_weights, _, plain = get_selector("dual_beta", late_rows="keep").weights(data, ratio)
    if fires:
        c3_weights, _, c3 = get_selector("dual_beta_horizon_only", late_rows="keep").weights(data, ratio)
        horizon = max(1, int(np.ceil((1 - ratio) * epochs - 1e-9)))
        assert c3["horizon_epochs"] == params["late_horizon_epochs"] == horizon
        assert params["late_set_aside"] == (data.aux["learned_epoch"] > horizon).sum() > 0
        np.testing.assert_array_equal(weights, c3_weights)
        assert not np.array_equal(weights, plain_weights)
    else:
        assert params["late_set_aside"] == 0 and params["anchor_p"] == plain["anchor_p"]
        np.testing.assert_array_equal(weights, plain_weights)


@pytest.mark.parametrize("ratio, epochs, per_epoch, horizon", [
    (0.9, 10, 36, 1),     # digits-like: 1.0 epoch's worth (C5: 1)
    (0.7, 4, 50, 1),      # 1.2 epochs' worth, 60 steps: C6 reads 1, C5 (C3's ceiling) 2
    (0.83, 10, 54, 1),    # 1.7 epochs' worth, 92 steps: C6 1, C5 2
    (0.7, 10, 16, 3),     # a whole number of epochs: C6 = C5
    (0.3, 4, 50, None),   # 140 steps: not starved, C6 = C5 = C1
])
def test_candidate_c6_reads_the_horizon_as_the_step_budget(ratio, epochs, per_epoch, horizon):
    # C6 (rejected at its confirmation, benchmarks/predeclared/2026-12-04_budget_horizon.md): the library default
    # with h = max(1, floor((1 - r)·E)) where the default uses max(1, ceil((1 - r)·E)).
    data = starved_inputs(epochs, per_epoch, seed=3)
    weights, _, params = get_selector("dual_beta_budget_horizon").weights(data, ratio)
    plain, _, _ = get_selector("dual_beta", late_rows="keep").weights(data, ratio)
    default, _, c5 = get_selector("dual_beta").weights(data, ratio)
    assert params["late_horizon_epochs"] == horizon
    if horizon is None:
        np.testing.assert_array_equal(weights, plain)
        return
    late = data.aux["learned_epoch"] > horizon
    assert params["late_set_aside"] == late.sum() > 0
    np.testing.assert_array_equal(weights, np.where(late, 0.0, plain))
    if c5["late_horizon_epochs"] == horizon:
        np.testing.assert_array_equal(weights, default)
    else:
        assert c5["late_horizon_epochs"] == horizon + 1 and params["late_set_aside"] > c5["late_set_aside"]


@pytest.mark.parametrize("sampling", ["systematic", "random"])
def test_candidate_c8_keeps_late_rows_in_the_uniform_part_of_the_mixture(sampling):
    # C8 (the library default until C10, benchmarks/predeclared/2026-12-05_late_rows_in_mixture.md): the same weights,
    # class plan and trust as the library's `dual_beta`; only the uniform part of a step-starved subset's mixture
    # still covers the late rows. Draw for draw it is the library's `draw` without the eligibility mask.
    data = starved_inputs(10, 16, seed=4)  # 0.7: 48 steps, step-starved
    data.aux_info["self_check"]["reliability"] = 0.5
    c8, c10 = get_selector("dual_beta_mixed_late", sampling=sampling), get_selector("dual_beta", sampling=sampling)
    weights, p_bar, params = c10.weights(data, 0.7)
    late = params["late_rows_mask"]
    rows = np.arange(400)
    for seed in range(3):
        old = DualBetaSelector.draw(c10, rows, weights, p_bar, 120, np.random.default_rng(seed), 0.5)
        np.testing.assert_array_equal(c8.draw(rows, weights, p_bar, 120, np.random.default_rng(seed), 0.5, ~late), old)
    kept8 = np.concatenate([c8(data, Budget(n_keep=120)).kept for data.seed in range(4)])
    kept10 = np.concatenate([c10(data, Budget(n_keep=120)).kept for data.seed in range(4)])
    assert late[kept8].sum() > 0 and late[kept10].sum() == 0
    # Not step-starved (the 60k run's 704 steps at 0.7): C8 and C10 select the same rows.
    data = starved_inputs(5, 469, seed=4)
    np.testing.assert_array_equal(c8(data, Budget(n_keep=120)).kept, c10(data, Budget(n_keep=120)).kept)
