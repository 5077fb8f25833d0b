"""Influence scores: per-sample parameter-influence *vectors* on the classification head.

`sgd_influence` (TPAMI 2026 / Hara et al. 2019) traces the recorded SGD trajectory backwards;
`influence_function` (ICLR 2023) uses the damped inverse Hessian at the final model. Both return a vector per row
(for the `greedy` and `mip` selectors) and a scalar `‖s_j‖`: **high means large influence, kept first** (the
papers' min-norm objective removes small, mutually cancelling influences first).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, RecordError, ScoreNotComputableError
from ..influence.influence_function import influence_function_vectors
from ..influence.sweep import SweepConfig, cached_sweep
from ..logging import get_logger
from ..tracking.record import TrainingRecord
from ..validation import check_int
from .base import ScoreFunction, ScoreOutput, register_score


logger = get_logger(__name__)


#: Exact vectors are used by `sketch_size="auto"` when they take at most this many bytes (float32, rows × head).
EXACT_VECTOR_BUDGET = 1 << 30
#: ... and when the head is at most this large (the sweep's cost grows with the number of columns).
EXACT_HEAD_LIMIT = 2048
DEFAULT_SKETCH = 256
EVAL_SKETCH = 64


def resolve_sketch(sketch_size: Any, num_samples: int, head_size: int) -> int | None:
    """`"auto"`: exact head vectors when they fit the budget, else a 256-column sketch; `None`/`"exact"`: exact."""
    if sketch_size in (None, "exact"):
        return None
    if sketch_size == "auto":
        exact_bytes = 4 * num_samples * head_size
        return None if (exact_bytes <= EXACT_VECTOR_BUDGET and head_size <= EXACT_HEAD_LIMIT) else DEFAULT_SKETCH
    return int(sketch_size)


def _check_sketch(name: str, sketch_size: Any) -> Any:
    if sketch_size in (None, "exact", "auto"):
        return sketch_size
    return check_int("sketch_size", sketch_size, minimum=1, context=f"Score `{name}`",
                     accepted="a positive integer `k` (random projections), 'exact' or 'auto'")


def _norms(vectors: np.ndarray) -> np.ndarray:
    out = np.empty(len(vectors))
    chunk = 1 << 16
    for lo in range(0, len(vectors), chunk):
        block = np.asarray(vectors[lo : lo + chunk], dtype=np.float64)
        out[lo : lo + chunk] = np.sqrt((block * block).sum(axis=1))
    return out


@register_score
class SGDInfluenceScore(ScoreFunction):
    """`sgd_influence`: SGD-Influence vectors `s_j ≈ θ_T^{−j} − θ_T` of the head, by the backward sweep.

    Options:
        sketch_size (`int`, `"exact"` or `"auto"`, defaults to `"auto"`): `k` Gaussian projections (a
            Johnson–Lindenstrauss sketch: norms of *sums* of `s_j` are preserved), exact head vectors, or exact when
            they fit 1 GiB and the head has at most 2,048 parameters.
        hessian (`bool`, defaults to `True`): `False` gives the Hessian-free variant (`Z_t = I`).
        window_epochs (`int`, *optional*): Trace only the last `E` epochs.
        precision (`str`, defaults to `"float32"`): arithmetic of the recursion (`"float64"` for reference runs).

    Returns the vectors (for vector selectors), `‖s_j‖` as the score (high = keep) and, when the record holds an
    evaluation set, the extra score `sgd_influence_eval`: Hara et al.'s linear influence of removing `j` on the
    summed evaluation loss (positive: removing `j` would raise the eval loss, so high = helpful = keep).
    See [`hf_prune.influence.sweep`] for exactly what is exact and what is approximated.
    """

    name = "sgd_influence"
    kind = "vector"
    requires = frozenset({"features", "trajectory"})
    #: `eval_vectors` (independent sketch columns for unbiased objective reports), with a random sketch only.
    provides_aux = ("eval_vectors",)

    def __init__(
        self, sketch_size: int | str | None = "auto", hessian: bool = True, window_epochs: int | None = None,
        precision: str = "float32", **options: Any,
    ):
        super().__init__(**options)
        self.sketch_size = _check_sketch(self.name, sketch_size)
        if precision not in ("float32", "float64"):
            raise InvalidArgumentError(
                f"Score `{self.name}`: `precision` must be 'float32' or 'float64', got {precision!r}."
            )
        self.precision = precision
        if not isinstance(hessian, bool):
            raise InvalidArgumentError(f"Score `{self.name}`: `hessian` must be True or False, got {hessian!r}.")
        self.hessian = hessian
        self.window_epochs = check_int("window_epochs", window_epochs, minimum=1, allow_none=True,
                                       context=f"Score `{self.name}`")

    def options(self):
        return {
            "sketch_size": self.sketch_size, "hessian": self.hessian, "window_epochs": self.window_epochs,
            "precision": self.precision,
        }

    def sweep_config(self, record: TrainingRecord, seed: int) -> SweepConfig:
        k = resolve_sketch(self.sketch_size, record.num_samples, record.head_size)
        return SweepConfig(
            sketch_size=k,
            hessian=self.hessian,
            window_epochs=self.window_epochs,
            seed=seed,
            query=True,
            eval_sketch_size=0 if k is None else EVAL_SKETCH,
            precision=self.precision,
        )

    def compute(self, record, context):
        start = time.perf_counter()
        result = cached_sweep(record, self.sweep_config(record, context.seed))
        aux = {}
        if result.eval_vectors is not None:
            aux["eval_vectors"] = result.eval_vectors
        extra = {}
        if result.eval_influence is not None:
            extra["sgd_influence_eval"] = np.asarray(result.eval_influence)
        info = {**result.info, "seconds_total": time.perf_counter() - start}
        return ScoreOutput(values=_norms(result.vectors), vectors=result.vectors, aux=aux, extra=extra, info=info)


@register_score
class SGDInfluenceEvalScore(SGDInfluenceScore):
    """`sgd_influence_eval`: Hara et al.'s data-cleansing score, the linear influence of removing each sample on the
    summed evaluation loss, from the same backward sweep as `sgd_influence` (cached).

    High means removing the sample would *raise* the evaluation loss (helpful, keep); negative values flag samples
    whose removal is estimated to lower it. Needs an `eval_dataset` at training time (`track_eval=True`).
    """

    name = "sgd_influence_eval"
    kind = "scalar"
    provides_aux = ()

    def compute(self, record, context):
        output = super().compute(record, context)
        if "sgd_influence_eval" not in output.extra:
            raise ScoreNotComputableError(
                "`sgd_influence_eval` needs the evaluation set's head outputs at the final model, but the record has "
                "none. Pass an `eval_dataset` to the PruneTrainer (with `track_eval=True`, the default) and train."
            )
        return ScoreOutput(values=output.extra["sgd_influence_eval"], info=output.info)


def holds_final_model(record: TrainingRecord, trainer: Any) -> bool:
    """Whether `trainer`'s model has the head its recorded run ended with (records made before the fingerprint was
    stored are trusted, as before)."""
    expected = record.meta.get("final_head")
    session = getattr(trainer, "_prune_session", None)
    if expected is None or session is None:
        return True
    from ..tracking.head import head_fingerprint

    session.ensure_probe(trainer.accelerator.unwrap_model(trainer.model))
    return head_fingerprint(session.head.module) == expected


def final_head_values(record: TrainingRecord, trainer: Any) -> tuple[dict[str, np.ndarray], str]:
    """Head features and logits of every training row at the final model.

    Uses (in order) a stored `final` auxiliary set, a forward pass with the trainer (stored for next time), or the
    last epoch's training-forward values recorded during training.
    """
    final = record.auxiliary("final")
    if final is not None:
        return final, "final_model_pass"
    if trainer is not None and not holds_final_model(record, trainer):
        logger.warning(
            "hf_prune: the trainer's model is not the one its run ended with (its head's weights differ from the "
            "record's final ones: a trainer rebuilt with a fresh model?), so `influence_function` reads the last "
            "epoch's recorded values instead of a final-model pass. Load the trained weights into the trainer's "
            "model for a pass at the final model."
        )
        trainer = None
    if trainer is not None and getattr(trainer, "train_dataset", None) is not None and record.has_features:
        captured = trainer.capture_head(trainer.train_dataset, with_index=True)
        if "index" in captured and len(captured["index"]) >= record.num_samples:
            order = np.empty(record.num_samples, dtype=np.int64)
            order[captured["index"]] = np.arange(len(captured["index"]))
            arrays = {"features": captured["features"][order], "logits": captured["logits"][order]}
            if trainer.is_world_process_zero():
                try:
                    record.write_auxiliary("final", arrays)
                except (OSError, RecordError) as err:
                    # Storing only saves the next call a forward pass; this call has the values already.
                    logger.warning(f"Could not store the final-model pass for reuse ({err}); continuing without it.")
            return arrays, "final_model_pass"
    if not record.has_features:
        raise ScoreNotComputableError(
            "`influence_function` needs head features; the record was made with `track_features=False`."
        )
    features = record.last_seen("features")
    logits = record.last_seen("logits")
    if not np.isfinite(features).all():
        raise ScoreNotComputableError(
            "`influence_function` without a trainer uses the last epoch's recorded features, but some samples were "
            "not presented in the last epoch. Pass the trainer (HFPruner(trainer, ...)) for a final-model pass."
        )
    return {"features": features, "logits": logits}, "last_epoch_training_forward"


@register_score
class InfluenceFunctionScore(ScoreFunction):
    """`influence_function` (Yang et al., ICLR 2023): `s_i = (1/n)(H + λI)⁻¹ g_i` on the head at the final model.

    Options:
        sketch_size (`int`, `"exact"` or `"auto"`, defaults to `"auto"`): as for `sgd_influence`.
        damping (`float`, *optional*): `λ`; default: the head's weight decay, else `1e-3·trace(H)/P`.
        solver (`str`, defaults to `"auto"`): `"cholesky"` (explicit head Hessian, up to 4,096 parameters under
            `"auto"`) or `"kfac"` (damped Kronecker factorisation, for large heads).

    The final model's head inputs come from one forward pass over the training set (eval mode) when the pruner has
    the trainer, else from the last epoch's training forward pass (noted in the result's info).
    """

    name = "influence_function"
    kind = "vector"
    requires = frozenset({"features"})
    #: `eval_vectors` (independent sketch columns for unbiased objective reports), with a random sketch only.
    provides_aux = ("eval_vectors",)

    def __init__(
        self, sketch_size: int | str | None = "auto", damping: float | None = None, solver: str = "auto",
        **options: Any,
    ):
        super().__init__(**options)
        self.sketch_size = _check_sketch(self.name, sketch_size)
        if damping is not None and (not isinstance(damping, (int, float)) or damping <= 0):
            raise InvalidArgumentError(f"Score `{self.name}`: `damping` must be a positive number, got {damping!r}.")
        if solver not in ("auto", "cholesky", "kfac"):
            raise InvalidArgumentError(
                f"Score `{self.name}`: `solver` must be 'auto', 'cholesky' or 'kfac', got {solver!r}."
            )
        self.damping = damping
        self.solver = solver

    def options(self):
        return {"sketch_size": self.sketch_size, "damping": self.damping, "solver": self.solver}

    def compute(self, record, context):
        start = time.perf_counter()
        values, source = final_head_values(record, context.trainer)
        k = resolve_sketch(self.sketch_size, record.num_samples, record.head_size)
        weight_decay = float(record.optimizer.get("weight_group", {}).get("weight_decay", 0.0))
        vectors, eval_vectors, info = influence_function_vectors(
            values["features"], values["logits"], record.labels, record.has_bias, damping=self.damping,
            weight_decay=weight_decay, sketch_size=k, eval_sketch_size=0 if k is None else EVAL_SKETCH,
            seed=context.seed, solver=self.solver,
        )
        aux = {"eval_vectors": eval_vectors} if eval_vectors is not None else {}
        info = {**info, "final_values": source, "seconds": time.perf_counter() - start}
        return ScoreOutput(values=_norms(vectors), vectors=vectors.astype(np.float32), aux=aux, info=info)
