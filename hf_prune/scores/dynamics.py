"""Training-dynamics scores: computed from values the ordinary training forward pass already produced.

Every score here reads the occurrence table of the record (softmax of the *training* forward pass: augmented input,
train mode, before that step's update, as DUAL/TDDS/CCS do) and costs no extra pass over the data. Per-epoch values
use each sample's first presentation in the epoch, so multi-process padding duplicates do not count twice.

Sign convention: higher means keep. For difficulty scores that is "harder / more uncertain is kept first", as in the
papers' "keep top" rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ScoreNotComputableError
from ..tracking.record import TrainingRecord
from ..validation import check_int
from .base import ScoreFunction, ScoreOutput, ScoringContext, check_epochs, register_score


def default_early_epochs(total: int) -> int:
    """EL2N/GraNd read an *early* phase of training: the first half of the recorded epochs (at least one)."""
    return max(1, total // 2)


def default_window(total: int) -> int:
    """Window length `J` of the sliding-window scores: 10 as in the papers from 19 epochs on, else about half."""
    return min(10, max(2, (total + 1) // 2))


def _nanmean_rows(table: np.ndarray) -> np.ndarray:
    counts = np.isfinite(table).sum(axis=0)
    sums = np.where(np.isfinite(table), table, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def window_statistics(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding-window mean and unbiased std over axis 0 of `values` `(T, n)`: arrays `(T − J + 1, n)`."""
    count = values.shape[0] - window + 1
    means = np.stack([values[k : k + window].mean(axis=0) for k in range(count)])
    stds = np.stack([values[k : k + window].std(axis=0, ddof=1) for k in range(count)])
    return means, stds


def memorization_gap(record: TrainingRecord, epochs: int | None = None) -> tuple[float, float, float]:
    """How much of the training set the run fits only by memorising it: `(gap, fit, prequential)`.

    `prequential` is the accuracy on the second half of the first epoch, where every sample is predicted *before*
    the model has trained on it (a held-out estimate along the trajectory, no extra data needed); `fit` is the
    training accuracy in the last scored epoch. `gap = max(0, fit − prequential)`: close to 0 when the model learns
    what generalises (it cannot fit what it could not predict), large when it memorises samples it could not have
    predicted (label noise, ambiguous or atypical rows, too little data for the model), the regime where keeping
    the hardest rows hurts (Sorscher et al. 2022).
    """
    present = record.epochs if epochs is None else record.epochs[:epochs]
    rows, _ = record.first_rows(int(present[0]))
    rows = np.sort(rows)
    late = rows[len(rows) // 2 :]
    prequential = float(record.occurrence_quantity("correct", late).mean()) if len(late) else 0.0
    last, _ = record.first_rows(int(present[-1]))
    fit = float(record.occurrence_quantity("correct", last).mean()) if len(last) else 0.0
    if len(present) < 2:  # one epoch: nothing was presented after being trained on
        return 0.0, fit, prequential
    return max(0.0, fit - prequential), fit, prequential


def prequential_curve(record: TrainingRecord, parts: int = 8) -> list[float]:
    """Accuracy of the first epoch's predictions in `parts` consecutive slices of its rows (in step order).

    Every row is predicted before the model trains on it in its first epoch, so each slice's accuracy is a held-out
    estimate for the model of that moment; a curve still climbing at its end says the first epoch's model was far
    from the final one (short runs from scratch), and its held-out estimate is not the final model's.
    """
    rows, _ = record.first_rows(int(record.epochs[0]))
    rows = np.sort(rows)
    correct = record.occurrence_quantity("correct", rows) if len(rows) else np.zeros(0)
    return [float(part.mean()) if len(part) else float("nan") for part in np.array_split(correct, parts)]


def within_class_rank_correlation(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float | None:
    """Pearson correlation of the within-class ranks of `a` and `b` (ranks centred and scaled per class, then
    pooled over classes; rows where either is not finite are left out). `None` when no class has 3 such rows."""
    xs, ys = [], []
    for label in np.unique(labels):
        members = np.flatnonzero((labels == label) & np.isfinite(a) & np.isfinite(b))
        if len(members) < 3:
            continue
        for values, out in ((a, xs), (b, ys)):
            ranks = np.argsort(np.argsort(values[members], kind="stable"), kind="stable").astype(np.float64)
            out.append((ranks - ranks.mean()) / len(members))
    if not xs:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def split_half_reliability(p_true: np.ndarray, labels: np.ndarray) -> float | None:
    """Do two halves of the run agree on which rows of a class are hard? Spearman-Brown corrected correlation
    between the rows' mean true-class probabilities over the odd and the even recorded epochs (`p_true` is
    `(E, n)`), ranked within each class and pooled, in [0, 1]. `None` with fewer than two epochs.

    The split-half reliability of classical test theory (Spearman 1910, Brown 1910): the share of the score's
    variance across rows that is signal rather than noise of the trajectory.
    """
    if p_true.shape[0] < 2:
        return None
    r = within_class_rank_correlation(_nanmean_rows(p_true[0::2]), _nanmean_rows(p_true[1::2]), labels)
    if r is None:
        return None
    return max(0.0, 2.0 * r / (1.0 + r)) if r > -1.0 else 0.0


def learned_epoch(record: TrainingRecord, epochs: int | None = None) -> np.ndarray:
    """Per row, after how many epochs the run had learned it for good: the smallest `k` such that the row is predicted
    correctly at every presentation of epochs `k+1 … E` (`E` when it is wrong at the last one; a presentation that is
    missing counts as wrong). `0` for a row right from its first presentation on."""
    correct = record.epoch_table("correct", epochs) > 0.5
    count, n = correct.shape
    stable = np.ones(n, dtype=bool)
    learned = np.full(n, count, dtype=np.int64)
    for k in range(count - 1, -1, -1):
        stable &= correct[k]
        learned[stable] = k
    return learned


def memorization_flags(record: TrainingRecord, p_mean: np.ndarray, epochs: int | None = None,
                       gap: float | None = None) -> tuple[np.ndarray, float]:
    """Flag (1.0) the `round(gap · n_c)` rows of lowest mean true-class probability in every class `c` (`gap`: the
    memorisation gap when the caller already has it, else measured here).

    These are the rows most likely to have been fit by memorisation (see `memorization_gap`); the `dual_beta`
    selector with `hard_cutoff="auto"` samples from the other rows first. Returns the flags and the gap.
    """
    gap = memorization_gap(record, epochs)[0] if gap is None else gap
    if gap <= 0.0:
        return np.zeros(len(p_mean), dtype=np.float32), gap
    return lowest_share_per_class(p_mean, record.labels, gap).astype(np.float32), gap


def lowest_share_per_class(values: np.ndarray, labels: np.ndarray, share: float,
                           among: np.ndarray | None = None) -> np.ndarray:
    """Mask of the `round(share · n_c)` rows of lowest `values` in every class `c` (half up, ties by index), counting
    and choosing only among the rows where `among` is true (default: all rows)."""
    values, labels = np.asarray(values), np.asarray(labels)
    among = np.ones(len(values), dtype=bool) if among is None else np.asarray(among, dtype=bool)
    mask = np.zeros(len(values), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(among & (labels == label))
        count = int(np.floor(share * len(members) + 0.5))
        mask[members[np.argsort(values[members], kind="stable")[:count]]] = True
    return mask


@register_score
class RandomScore(ScoreFunction):
    """`random`: i.i.d. uniform values (seeded). Any selector keeping "the top" of it keeps a uniform random subset;
    on its own (`method="random"`) it selects with the `random` selector, the class-stratified baseline."""

    name = "random"
    provides_aux = ()
    default_selector = "random"

    def compute(self, record: TrainingRecord, context: ScoringContext) -> ScoreOutput:
        rng = np.random.default_rng(context.seed)
        return ScoreOutput(values=rng.random(record.num_samples), info={"seed": context.seed})


class _EpochWindowScore(ScoreFunction):
    """Shared option handling: `epochs` = number of leading epochs read (default documented per score)."""

    def __init__(self, epochs: int | None = None, **options: Any):
        super().__init__(**options)
        self.epochs = check_int("epochs", epochs, minimum=1, allow_none=True, context=f"Score `{self.name}`")

    def options(self) -> dict[str, Any]:
        return {"epochs": self.epochs}


@register_score
class EL2NScore(_EpochWindowScore):
    """`el2n` (Paul et al. 2021, arXiv 2107.07075): `‖softmax(z_i) − e_{y_i}‖₂`, averaged over early epochs.

    Reads the first `epochs` epochs (default: the first half of the record, at least one; the paper uses epoch 20 of
    200, the prototype epochs 1–2 of 5). High error = hard = kept first.
    """

    name = "el2n"
    provides_aux = ()

    def compute(self, record, context):
        epochs = check_epochs(self.name, record, self.epochs or default_early_epochs(len(record.epochs)))
        values = _nanmean_rows(record.epoch_table("el2n", epochs))
        return ScoreOutput(values=values, info={"epochs": epochs})


@register_score
class GraNdScore(_EpochWindowScore):
    """`grand` (Paul et al. 2021), exact for the classification head in closed form.

    `‖∇_head ℓ_i‖ = ‖softmax(z_i) − e_{y_i}‖ · sqrt(‖h_i‖² + 1)` (`‖h_i‖` without the `+1` if the head has no bias),
    from the training forward pass, averaged over the same early epochs as `el2n`. Differs from the paper in scope
    (head only, one run) and in that it reads recorded values instead of gradients at initialisation. High = keep.
    """

    name = "grand"
    requires = frozenset({"features"})
    provides_aux = ()

    def compute(self, record, context):
        epochs = check_epochs(self.name, record, self.epochs or default_early_epochs(len(record.epochs)))
        el2n = record.epoch_table("el2n", epochs)
        norms = np.full_like(el2n, np.nan)
        bias = 1.0 if record.has_bias else 0.0
        for k, epoch in enumerate(record.epochs[:epochs]):
            rows, index = record.first_rows(epoch)
            chunk = 1 << 16
            for lo in range(0, len(rows), chunk):
                feats = np.asarray(record.occurrences["features"][rows[lo : lo + chunk]], dtype=np.float64)
                norms[k, index[lo : lo + chunk]] = np.sqrt((feats * feats).sum(axis=1) + bias)
        return ScoreOutput(values=_nanmean_rows(el2n * norms), info={"epochs": epochs})


@register_score
class ForgettingScore(ScoreFunction):
    """`forgetting` (Toneva et al. 2019, arXiv 1812.05159): number of forgetting events over the recorded epochs.

    A forgetting event is a presentation where the sample is misclassified after having been classified correctly at
    its previous presentation (epoch-level presentations of the training forward pass). With
    `never_learned="max"` (default, the paper's rule) samples never classified correctly get a score above every
    forgetting count; `"zero"` counts them as 0 events (what the CCS/DUAL reference code does). High = keep.
    """

    name = "forgetting"
    provides_aux = ()

    def __init__(self, never_learned: str = "max", **options: Any):
        super().__init__(**options)
        if never_learned not in ("max", "zero"):
            raise InvalidArgumentError(
                f"Score `forgetting`: `never_learned` must be 'max' or 'zero', got {never_learned!r}."
            )
        self.never_learned = never_learned

    def options(self):
        return {"never_learned": self.never_learned}

    def compute(self, record, context):
        correct = record.epoch_table("correct")
        events = np.zeros(record.num_samples)
        previous = np.full(record.num_samples, np.nan)
        for row in correct:
            seen = np.isfinite(row)
            events += seen & (previous == 1.0) & (row == 0.0)
            previous = np.where(seen, row, previous)
        values = events.astype(np.float64)
        if self.never_learned == "max":
            never = ~(np.nan_to_num(correct, nan=0.0) == 1.0).any(axis=0)
            values[never] = values.max() + 1.0
        return ScoreOutput(values=values, info={"epochs": len(correct)})


@register_score
class AUMScore(ScoreFunction):
    """`aum` (Pleiss et al. 2020, arXiv 2001.10528): *negated* area under the logit margin.

    `AUM(i) = mean_t (z_t[y_i] − max_{c≠y_i} z_t[c])` over the recorded epochs; low AUM means hard or mislabeled. The
    score is `−AUM`, so that high = hard = kept first, as the CCS baselines keep the lowest AUM. (The CCS code uses
    probability margins accumulated over every step; this uses logit margins per epoch, as in the paper.)
    """

    name = "aum"
    provides_aux = ()

    def compute(self, record, context):
        margins = record.epoch_table("margin")
        return ScoreOutput(values=-_nanmean_rows(margins), info={"epochs": len(margins)})


@register_score
class EntropyScore(ScoreFunction):
    """`entropy` (Coleman et al. 2020, arXiv 1906.11829): entropy of the softmax at the last recorded epoch.

    Training-forward outputs of the last epoch (as DUAL's re-implementation); high entropy = uncertain = keep.
    """

    name = "entropy"
    provides_aux = ()

    def compute(self, record, context):
        table = record.epoch_table("entropy")
        return ScoreOutput(values=table[-1], info={"epoch": int(record.epochs[-1])})


@register_score
class LeastConfidenceScore(ScoreFunction):
    """`least_confidence` (Coleman et al. 2020): `1 − max_c softmax(z_i)_c` at the last recorded epoch. High = keep."""

    name = "least_confidence"
    provides_aux = ()

    def compute(self, record, context):
        table = record.epoch_table("max_prob")
        return ScoreOutput(values=1.0 - table[-1], info={"epoch": int(record.epochs[-1])})


class _WindowScore(ScoreFunction):
    def __init__(self, epochs: int | None = None, window: int | None = None, **options: Any):
        super().__init__(**options)
        self.epochs = check_int("epochs", epochs, minimum=1, allow_none=True, context=f"Score `{self.name}`")
        self.window = check_int("window", window, minimum=1, allow_none=True, context=f"Score `{self.name}`")

    def options(self):
        return {"epochs": self.epochs, "window": self.window}

    def _resolve(self, record: TrainingRecord, minimum_window: int = 2) -> tuple[int, int]:
        epochs = check_epochs(self.name, record, self.epochs)
        # The default adapts to short runs but never drops below what the score needs (TDDS: 3 epochs per window).
        window = self.window or max(default_window(epochs), minimum_window)
        if window < minimum_window:
            raise InvalidArgumentError(f"Score `{self.name}`: `window` must be at least {minimum_window}, got {window}.")
        if window > epochs:
            smaller = f"pass `window={epochs}`" if epochs >= minimum_window else "use a score that reads one epoch"
            raise ScoreNotComputableError(
                f"Score `{self.name}` uses windows of {window} epochs but reads only {epochs} epoch(s) of the record "
                f"({len(record.epochs)} recorded). Train for at least {max(window if self.window else minimum_window, 2)}"
                f" epochs, or {smaller} (`dual`, the default, `el2n`, `entropy` and `least_confidence` work on "
                "one epoch)."
            )
        return epochs, window


@register_score
class DynamicUncertaintyScore(_WindowScore):
    """`dyn_unc` (He et al., arXiv 2306.05175): mean over sliding windows of the std of the true-class probability.

    `DU(i) = 1/(T−J+1) Σ_k std_{t∈[k,k+J)} P_t(i)` (unbiased std) over the first `epochs` epochs (default: all) with
    window `window` (default 10, or about half the epochs for short runs). Reads training-forward probabilities (the
    official code runs a second, eval-mode forward; this costs nothing extra). High = uncertain = keep.
    """

    name = "dyn_unc"
    provides_aux = ()

    def compute(self, record, context):
        epochs, window = self._resolve(record)
        p_true = record.epoch_table("p_true", epochs)
        _, stds = window_statistics(p_true, window)
        return ScoreOutput(values=stds.mean(axis=0), info={"epochs": epochs, "window": window})


@register_score
class DUALScore(_WindowScore):
    """`dual` (Cho et al., ICML 2025, arXiv 2502.06905): difficulty × uncertainty over the first epochs.

    `DUAL(i) = 1/(T−J+1) Σ_k (1 − μ_k(i)) · σ_k(i)` with `μ_k`, `σ_k` the mean and unbiased std of the true-class
    probability over window `k` of length `J`. Reads the first `epochs` epochs (default: all recorded; DUAL's point is
    that a short run suffices, see `PruneArguments.score_epochs`). Also returns `p_mean` (mean true-class probability
    over those epochs) and `learned_epoch` (after how many epochs each row was learned for good, [`learned_epoch`])
    for the `dual_beta` selector. On a one-epoch record the window's std is replaced by the
    Bernoulli std of the row's single prediction, `DUAL(i) = (1 − P(i)) · sqrt(P(i)(1 − P(i)))`. High = keep.
    """

    name = "dual"
    #: `p_mean` (mean true-class probability over the scored epochs), `memorized` (the memorisation flags) and
    #: `learned_epoch` (when each row was learned for good), which `dual_beta` reads.
    provides_aux = ("p_mean", "memorized", "learned_epoch")

    def compute(self, record, context):
        if check_epochs(self.name, record, self.epochs) == 1 and self.window in (None, 1):
            # One epoch (a one-epoch fine-tune, or `score_epochs=1`): every row was predicted once, before it was
            # trained on, so there is no spread over epochs to measure. The uncertainty is then the spread of the
            # prediction itself: the std `sqrt(p(1 − p))` of a Bernoulli trial with the row's true-class probability.
            epochs, window = 1, 1
            p_true = record.epoch_table("p_true", 1)
            values = ((1.0 - p_true) * np.sqrt(p_true * (1.0 - p_true)))[0]
        else:
            epochs, window = self._resolve(record)
            p_true = record.epoch_table("p_true", epochs)
            means, stds = window_statistics(p_true, window)
            values = ((1.0 - means) * stds).mean(axis=0)
        p_mean = p_true.mean(axis=0)
        check = self_check(record, p_true, epochs)
        memorized, gap = memorization_flags(record, p_mean, epochs, gap=check["prequential_gap"])
        aux = {"p_mean": p_mean, "memorized": memorized}
        if record.meta.get("source") != "checkpoints":
            # Checkpoints are not epochs of one run seen in order: "learned after the first" says nothing there.
            aux["learned_epoch"] = learned_epoch(record, epochs).astype(np.float64)
        return ScoreOutput(
            values=values, aux=aux,
            info={"epochs": epochs, "window": window, "memorization_gap": gap, "self_check": check},
        )


@register_score
class TDDSScore(_WindowScore):
    """`tdds` (Zhang et al., CVPR 2024, arXiv 2311.13613), following the official code.

    Per epoch transition `a_t(i) = Σ_c |p_{t+1,c} (log p_{t+1,c} − log p_{t,c})|`; per window `k` of `J` epochs (so
    `J − 1` transitions) `v_k(i) = sqrt(Σ_j (a_j − ā_k)²)`; `TDDS(i) = Σ_k β(1−β)^{K−1−k} v_k(i)` (the last window
    weighs `β`). Options: `epochs`, `window`, `decay` (β, default 0.9). High = keep.
    """

    name = "tdds"
    provides_aux = ()

    def __init__(self, epochs: int | None = None, window: int | None = None, decay: float = 0.9, **options: Any):
        super().__init__(epochs=epochs, window=window, **options)
        if not (0.0 < float(decay) <= 1.0):
            raise InvalidArgumentError(f"Score `tdds`: `decay` must be in (0, 1], got {decay!r}.")
        self.decay = float(decay)

    def options(self):
        return {**super().options(), "decay": self.decay}

    def compute(self, record, context):
        epochs, window = self._resolve(record, minimum_window=3)
        n = record.num_samples
        transitions = np.full((epochs - 1, n), np.nan)
        previous = None
        for k, epoch in enumerate(record.epochs[:epochs]):
            rows, index = record.first_rows(epoch)
            log_probs = np.full((n, record.num_classes), np.nan)
            logits = np.asarray(record.occurrences["logits"][rows], dtype=np.float64)
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_probs[index] = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            if previous is not None:
                probs = np.exp(log_probs)
                transitions[k - 1] = np.abs(probs * (log_probs - previous)).sum(axis=1)
            previous = log_probs
        count = (epochs - 1) - (window - 1) + 1
        values = np.zeros(n)
        for k in range(count):
            block = transitions[k : k + window - 1]
            spread = np.sqrt(((block - block.mean(axis=0)) ** 2).sum(axis=0))
            values += self.decay * (1.0 - self.decay) ** (count - 1 - k) * spread
        return ScoreOutput(values=values, info={"epochs": epochs, "window": window, "decay": self.decay})


@register_score
class ModerateScore(ScoreFunction):
    """`moderate` (Xia et al., ICLR 2023): distance of the head input to its class's coordinate-wise median.

    `d(i) = ‖h_i − median_{j: y_j = y_i} h_j‖₂`, with `h` the head input at each sample's last-epoch presentation. The
    `moderate` selector keeps the central band of `d` ranks; with `topk` the most atypical samples are kept.
    """

    name = "moderate"
    requires = frozenset({"features"})
    provides_aux = ()

    def compute(self, record, context):
        epoch = int(record.epochs[-1])
        rows, index = record.first_rows(epoch)
        if len(index) != record.num_samples:
            raise ScoreNotComputableError(
                f"Score `moderate` needs every sample's features from the last epoch, but only {len(index)} of "
                f"{record.num_samples} were presented in epoch {epoch} (a partial epoch). Train for whole epochs."
            )
        features = np.empty((record.num_samples, record.feature_dim), dtype=np.float64)
        features[index] = np.asarray(record.occurrences["features"][rows], dtype=np.float64)
        labels = record.labels
        values = np.empty(record.num_samples)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            median = np.median(features[members], axis=0)
            values[members] = np.linalg.norm(features[members] - median, axis=1)
        return ScoreOutput(values=values, info={"epoch": epoch})


def steps_per_epoch(record: TrainingRecord, epochs: int | None = None) -> float | None:
    """The run's mean number of optimizer steps per scored epoch (all processes together), `None` when the record
    has no step of those epochs (a checkpoint record)."""
    scored = record.epochs if epochs is None else record.epochs[:epochs]
    if not len(scored) or record.meta.get("source") == "checkpoints":
        return None
    counts = np.isin(np.asarray(record.steps["epoch"]), scored).sum()
    return float(counts) / len(scored) if counts else None


def self_check(record: TrainingRecord, p_true: np.ndarray, epochs: int) -> dict[str, Any]:
    """What the run says about how far its scores can be trusted (recorded with every `dual` score; the `dual_beta`
    selector acts on it): split-half reliability of the rows' difficulty, how far the run got beyond chance, and
    the gap between its training fit and its held-out accuracy (the trainer's eval set when recorded, else the
    prequential estimate of the first epoch with its learning curve)."""
    from ..tracking.quality import run_quality

    quality = run_quality(record, epochs)
    gap, fit, prequential = memorization_gap(record, epochs)
    agreement = split_half_reliability(p_true, np.asarray(record.labels))
    check: dict[str, Any] = {"reliability": agreement, "recorded_epochs": int(epochs),
                             "planned_epochs": quality.planned_epochs,
                             "steps_per_epoch": steps_per_epoch(record, epochs)}
    if p_true.shape[0] < 2:
        check["unmeasurable"] = "each row was scored once (a one-epoch record or a single checkpoint)"
    elif record.meta.get("source") == "checkpoints":
        # Every "epoch" of a checkpoint record predicts rows the model has already trained on, and a model fits even
        # the rows it could not predict (Feldman & Zhang 2020, https://arxiv.org/abs/2008.03703): two late
        # checkpoints agree on near-1 probabilities, so the agreement says how stable the checkpoints are, not which
        # rows are hard (measured in benchmarks/README.md, History, 2026-12-04). Kept for information, not used as
        # the reliability.
        check.update(reliability=None, checkpoint_agreement=agreement,
                     unmeasurable="a checkpoint record: every prediction is of a model already trained on the row")
    check.update({
        "explained": quality.explained,
        "train_accuracy": fit,
        "prequential_accuracy": prequential,
        "prequential_gap": gap,
        "prequential_curve": prequential_curve(record),
        "eval_accuracy": quality.eval_accuracy,
        "eval_gap": None if quality.eval_accuracy is None else max(0.0, fit - quality.eval_accuracy),
    })
    return check
