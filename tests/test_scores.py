"""Every training-dynamics score against values computed by hand on synthetic trajectories of 4–8 samples."""

from __future__ import annotations

import numpy as np
import pytest
from record_utils import logits_for, synthetic_record

from hf_prune.errors import InvalidArgumentError, ScoreNotComputableError
from hf_prune.scores import get_score, list_scores


# p_true of 4 samples (label 1, binary) over 5 epochs.
P = np.array(
    [
        [0.60, 0.70, 0.80, 0.90, 0.95],  # learned steadily
        [0.40, 0.60, 0.40, 0.70, 0.30],  # forgotten twice
        [0.20, 0.20, 0.30, 0.20, 0.10],  # never learned
        [0.90, 0.90, 0.90, 0.90, 0.90],  # easy, constant
    ]
)
LABELS = np.array([1, 1, 1, 1])


def make(tmp_path, p=P, order=None, duplicate=None, partial=None, features=None):
    epochs = []
    for e in range(p.shape[1]):
        rows = list(order[e]) if order is not None else list(range(len(p)))
        presentations = [(i, logits_for(p[i, e], 1)) for i in rows]
        if duplicate is not None and e == duplicate[0]:
            # A padding duplicate at the end of the epoch with a different value: it must not count.
            presentations.append((duplicate[1], logits_for(0.5, 1)))
        if partial is not None and e == p.shape[1] - 1:
            presentations = presentations[:partial]
        epochs.append(presentations)
    return synthetic_record(tmp_path / "record", LABELS[: len(p)], epochs, num_classes=2, features=features)


def window_std(values, window):
    return np.stack([values[:, k : k + window].std(axis=1, ddof=1) for k in range(values.shape[1] - window + 1)], 1)


def test_el2n_by_hand(tmp_path):
    record = make(tmp_path)
    # binary: ||softmax - onehot||_2 = sqrt(2) * (1 - p_true); default: first half of 5 epochs = 2 epochs
    expected = np.sqrt(2) * (1 - P[:, :2]).mean(axis=1)
    np.testing.assert_allclose(get_score("el2n")(record).values, expected, rtol=1e-5)
    np.testing.assert_allclose(get_score("el2n", epochs=5)(record).values, np.sqrt(2) * (1 - P).mean(1), rtol=1e-5)


def test_grand_head_closed_form(tmp_path):
    feats = {0: np.array([3.0, 4.0]), 1: np.array([0.0, 0.0]), 2: np.array([1.0, 2.0]), 3: np.array([2.0, 2.0])}
    record = make(tmp_path, features=feats)
    norms = np.sqrt(np.array([25.0, 0.0, 5.0, 8.0]) + 1.0)
    expected = np.sqrt(2) * (1 - P[:, :2]).mean(axis=1) * norms
    np.testing.assert_allclose(get_score("grand")(record).values, expected, rtol=1e-5)


def test_forgetting_events(tmp_path):
    record = make(tmp_path)
    # correct = p_true > 0.5: [1,1,1,1,1] -> 0; [0,1,0,1,0] -> 2; never -> max+1; always -> 0
    np.testing.assert_array_equal(get_score("forgetting")(record).values, [0, 2, 3, 0])
    np.testing.assert_array_equal(get_score("forgetting", never_learned="zero")(record).values, [0, 2, 0, 0])


def test_aum_is_negated_mean_logit_margin(tmp_path):
    record = make(tmp_path)
    margin = np.log(P) - np.log(1 - P)  # true logit minus the other logit
    np.testing.assert_allclose(get_score("aum")(record).values, -margin.mean(axis=1), rtol=1e-5)


def test_entropy_and_least_confidence_last_epoch(tmp_path):
    record = make(tmp_path)
    last = P[:, -1]
    entropy = -(last * np.log(last) + (1 - last) * np.log(1 - last))
    np.testing.assert_allclose(get_score("entropy")(record).values, entropy, rtol=1e-5)
    np.testing.assert_allclose(get_score("least_confidence")(record).values, 1 - np.maximum(last, 1 - last), rtol=1e-5)


def test_dyn_unc_and_dual_windows(tmp_path):
    record = make(tmp_path)
    # default window for 5 epochs is 3 -> 3 windows
    stds = window_std(P, 3)
    means = np.stack([P[:, k : k + 3].mean(axis=1) for k in range(3)], 1)
    np.testing.assert_allclose(get_score("dyn_unc")(record).values, stds.mean(1), rtol=1e-5)
    dual = get_score("dual")(record)
    np.testing.assert_allclose(dual.values, ((1 - means) * stds).mean(1), rtol=1e-5)
    np.testing.assert_allclose(dual.aux["p_mean"], P.mean(1), rtol=1e-5)
    # explicit options: first 4 epochs, window 2
    stds2 = window_std(P[:, :4], 2)
    means2 = np.stack([P[:, k : k + 2].mean(axis=1) for k in range(3)], 1)
    np.testing.assert_allclose(get_score("dual", epochs=4, window=2)(record).values, ((1 - means2) * stds2).mean(1),
                               rtol=1e-5)


def test_tdds_by_hand(tmp_path):
    record = make(tmp_path)
    probs = np.stack([1 - P, P], axis=2)  # (n, T, C)
    a = np.abs(probs[:, 1:] * (np.log(probs[:, 1:]) - np.log(probs[:, :-1]))).sum(axis=2)  # (n, T-1)
    window = 3  # J epochs -> J-1 transitions per window; windows k = 0..T-J
    count = 5 - window + 1
    expected = np.zeros(4)
    for k in range(count):
        block = a[:, k : k + window - 1]
        spread = np.sqrt(((block - block.mean(1, keepdims=True)) ** 2).sum(1))
        expected += 0.9 * 0.1 ** (count - 1 - k) * spread
    np.testing.assert_allclose(get_score("tdds")(record).values, expected, rtol=1e-5)
    # On 4 epochs the generic short-run default (2) is too short for TDDS, which needs 3 epochs per window: the
    # default becomes 3, the same as asking for it.
    short = get_score("tdds", epochs=4)(record)
    assert short.info["window"] == 3
    np.testing.assert_allclose(short.values, get_score("tdds", epochs=4, window=3)(record).values)


def test_moderate_distance_to_class_median(tmp_path):
    feats = {0: np.array([0.0, 0.0]), 1: np.array([1.0, 0.0]), 2: np.array([5.0, 0.0]), 3: np.array([2.0, 2.0])}
    record = make(tmp_path, features=feats)
    median = np.median(np.stack(list(feats.values())), axis=0)  # one class: [1.5, 1.0]
    expected = np.array([np.linalg.norm(f - median) for f in feats.values()])
    np.testing.assert_allclose(get_score("moderate")(record).values, expected, rtol=1e-6)


def test_random_score_is_seeded(tmp_path):
    from hf_prune.scores import ScoringContext

    record = make(tmp_path)
    a = get_score("random")(record, ScoringContext(seed=3)).values
    np.testing.assert_array_equal(a, get_score("random")(record, ScoringContext(seed=3)).values)
    assert not np.array_equal(a, get_score("random")(record, ScoringContext(seed=4)).values)


def test_shuffled_order_and_padding_duplicates(tmp_path):
    rng = np.random.default_rng(0)
    order = [rng.permutation(4) for _ in range(5)]
    # sample 2 presented again at the end of epoch 1 with another value (a padding duplicate): first one counts
    record = make(tmp_path, order=order, duplicate=(1, 2))
    np.testing.assert_allclose(get_score("dyn_unc")(record).values, window_std(P, 3).mean(1), rtol=1e-5)
    assert record.num_occurrences == 21


def test_partial_last_epoch_is_left_out(tmp_path):
    record = make(tmp_path, partial=2)  # epoch 4 presents only samples 0 and 1
    assert list(record.epochs) == [0, 1, 2, 3] and list(record.all_epochs) == [0, 1, 2, 3, 4]
    entropy_epoch3 = -(P[:, 3] * np.log(P[:, 3]) + (1 - P[:, 3]) * np.log(1 - P[:, 3]))
    np.testing.assert_allclose(get_score("entropy")(record).values, entropy_epoch3, rtol=1e-5)
    stds = window_std(P[:, :4], 2)  # 4 complete epochs -> default window 2
    np.testing.assert_allclose(get_score("dyn_unc")(record).values, stds.mean(1), rtol=1e-5)


def test_scale_invariance_of_rankings(tmp_path):
    """DUAL/Dyn-Unc rankings do not depend on the reference code's x10 factor (checked by rescaling P)."""
    record = make(tmp_path)
    values = get_score("dyn_unc")(record).values
    assert np.argsort(values).tolist() == np.argsort(10 * window_std(P, 3).mean(1)).tolist()


# ---------------------------------------------------------------------- errors
def test_not_enough_epochs(tmp_path):
    record = make(tmp_path)
    with pytest.raises(ScoreNotComputableError, match="needs 8 epochs but the record holds 5"):
        get_score("el2n", epochs=8)(record)
    with pytest.raises(ScoreNotComputableError, match="windows of 6 epochs but reads only 5"):
        get_score("dual", window=6)(record)


def test_bad_options():
    with pytest.raises(InvalidArgumentError, match="`epochs` must be a positive integer"):
        get_score("el2n", epochs=0)
    with pytest.raises(InvalidArgumentError, match="takes no option"):
        get_score("entropy", epochs=2)
    with pytest.raises(InvalidArgumentError, match="`never_learned` must be"):
        get_score("forgetting", never_learned="sometimes")
    with pytest.raises(InvalidArgumentError, match="`decay` must be in"):
        get_score("tdds", decay=0)


def test_features_required(tmp_path):
    record = make(tmp_path)
    with pytest.raises(ScoreNotComputableError, match="track_features=False"):
        get_score("grand")(record)


@pytest.mark.parametrize("name", sorted(set(list_scores()) - {"sgd_influence", "sgd_influence_eval",
                                                                   "influence_function"}))
def test_every_scalar_score_obeys_the_contract(tmp_path, name):
    feats = {i: np.array([float(i), 1.0]) for i in range(4)}
    record = make(tmp_path, features=feats)
    output = get_score(name)(record)
    assert output.values.shape == (4,) and np.isfinite(output.values).all()
    assert isinstance(get_score(name).options(), dict)


def test_memorization_gap_and_flags_by_hand(tmp_path):
    from hf_prune.scores.dynamics import memorization_gap

    # 8 rows, labels alternate. Epoch 0 presents 0..7 in order: its second half (rows 4–7) is predicted before being
    # trained on; 4 and 5 right, 6 and 7 wrong -> prequential accuracy 0.5. Epoch 1: every row right except row 0
    # -> fit 7/8. Gap = 0.875 − 0.5 = 0.375; in every class of 4 rows round(1.5) = 2 rows are flagged (lowest P̄).
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    p0 = [0.6, 0.6, 0.6, 0.6, 0.7, 0.8, 0.3, 0.2]
    p1 = [0.4, 0.9, 0.95, 0.6, 0.9, 0.9, 0.7, 0.55]
    epochs = [[(i, logits_for(p[i], int(labels[i]))) for i in range(8)] for p in (p0, p1)]
    record = synthetic_record(tmp_path / "r", labels, epochs, num_classes=2)
    gap, fit, prequential = memorization_gap(record)
    assert (fit, prequential) == pytest.approx((0.875, 0.5)) and gap == pytest.approx(0.375)
    dual = get_score("dual")(record)
    assert dual.info["memorization_gap"] == pytest.approx(0.375)
    # P̄: class 0 rows 0,2,4,6 -> 0.5, 0.775, 0.8, 0.5; class 1 rows 1,3,5,7 -> 0.75, 0.6, 0.85, 0.375.
    np.testing.assert_array_equal(np.flatnonzero(dual.aux["memorized"]), [0, 3, 6, 7])
    # One epoch: nothing was predicted after being trained on, so no gap is claimed.
    single = synthetic_record(tmp_path / "s", labels, epochs[:1], num_classes=2)
    assert memorization_gap(single) == pytest.approx((0.0, 0.75, 0.5))  # fit = epoch 0: 6 of 8 right
