"""Score extrapolation (Schmidt, Dhungel et al., arXiv 2506.09010): score a small subset, predict the rest.

1. Draw a seeded uniform subset (`fraction` of the rows, the *seeds*);
2. train a fresh copy of the model on the seeds only, with the same arguments, recording the run;
3. compute the score on the seeds from that record;
4. embed every row with the subset model's head input (one eval-mode forward pass);
5. predict the score of the other rows by kNN over the seeds (plain or `exp(−d)`-weighted mean, as the reference
   code) or by a small GCN over the kNN graph of all rows (pure torch); seeds keep their own scores.

Costs `fraction` of a full scoring run plus one forward pass and the neighbour search.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from . import logging
from .errors import InvalidArgumentError, ScoreNotComputableError
from .scores.base import ScoreFunction, ScoreOutput, ScoringContext
from .scores.dynamics import within_class_rank_correlation
from .validation import check_int, check_number


logger = logging.get_logger(__name__)

METHODS = ("knn", "gnn")


def nearest_seeds(embeddings: np.ndarray, seed_rows: np.ndarray, k: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into `seed_rows`) and Euclidean distances of the `k` nearest seeds of every row."""
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    seeds = x[torch.as_tensor(seed_rows)]
    seed_sq = (seeds * seeds).sum(1)
    k = min(k, len(seed_rows))
    neighbours, distances = [], []
    for lo in range(0, len(x), chunk):
        q = x[lo : lo + chunk]
        d2 = (q * q).sum(1, keepdim=True) + seed_sq[None, :] - 2.0 * q @ seeds.T
        values, index = torch.topk(d2.clamp_min(0), k, dim=1, largest=False)
        neighbours.append(index.numpy())
        distances.append(values.sqrt().numpy())
    return np.concatenate(neighbours), np.concatenate(distances).astype(np.float64)


def _neighbour_mean(values: np.ndarray, neighbours: np.ndarray, distances: np.ndarray, weighted: bool) -> np.ndarray:
    """The (`exp(−d)`-weighted) mean of `values` over every row's `neighbours`."""
    if weighted:
        # exp(−d) relative to the nearest neighbour (the shift cancels in the normalisation, avoids underflow).
        w = np.exp(-(distances - distances[:, :1]))
    else:
        w = np.ones_like(distances)
    w /= w.sum(axis=1, keepdims=True)
    gathered = values[neighbours]  # (n, k) or (n, k, a)
    return (gathered * (w[:, :, None] if gathered.ndim == 3 else w)).sum(axis=1)


def knn_extrapolate(
    embeddings: np.ndarray, seed_rows: np.ndarray, seed_values: np.ndarray, k: int = 10, weighted: bool = True
) -> np.ndarray:
    """Predict every row's value as the (`exp(−d)`-weighted) mean of its `k` nearest seeds; seeds keep theirs.

    `seed_values` may be `(m,)` or `(m, a)` (several arrays extrapolated with the same neighbours).
    """
    seed_rows = np.asarray(seed_rows)
    values = np.asarray(seed_values, dtype=np.float64)
    neighbours, distances = nearest_seeds(embeddings, seed_rows, k)
    predicted = _neighbour_mean(values, neighbours, distances, weighted)
    predicted[seed_rows] = values
    return predicted


def leave_one_out_knn(
    embeddings: np.ndarray, seed_rows: np.ndarray, seed_values: np.ndarray, k: int = 10, weighted: bool = True
) -> np.ndarray:
    """Every seed's value predicted as `knn_extrapolate` would predict it were it not a seed: from its `k` nearest
    *other* seeds. Shape `(m,)` (NaN when there is no other seed)."""
    seed_rows = np.asarray(seed_rows)
    values = np.asarray(seed_values, dtype=np.float64)
    m = len(seed_rows)
    if m < 2:
        return np.full(m, np.nan)
    neighbours, distances = nearest_seeds(np.asarray(embeddings)[seed_rows], np.arange(m), min(k + 1, m))
    own = neighbours == np.arange(m)[:, None]
    # Drop each seed's own entry (the farthest neighbour instead when an exact duplicate outranked it).
    drop = np.where(own.any(axis=1), own.argmax(axis=1), neighbours.shape[1] - 1)
    keep = np.ones(neighbours.shape, dtype=bool)
    keep[np.arange(m), drop] = False
    width = neighbours.shape[1] - 1
    return _neighbour_mean(values, neighbours[keep].reshape(m, width), distances[keep].reshape(m, width), weighted)


def extrapolation_check(seed_check: dict[str, Any] | None, seed_values: np.ndarray, predicted: np.ndarray,
                        seed_labels: np.ndarray) -> dict[str, Any]:
    """The self-check of extrapolated scores: the seed run's own (`seed_check`, the `dual` score's), with its
    `reliability` replaced by what the extrapolation can vouch for.

    `extrapolation_fit` `q` is the within-class rank correlation between the seeds' own values (`p_mean` for the
    `dual` score, what `dual_beta` ranks rows by) and their leave-one-out kNN predictions from the other seeds: an
    out-of-sample estimate of how well a row's value is predicted from its neighbours. The extrapolated scores'
    reliability is `q²` (the share of the seed values' variance the extrapolation reproduces out of sample; under
    classical test theory a lower bound of the squared correlation between the predictions and the rows' true
    difficulty, `q² / ρ`), and never above the seed run's own split-half reliability `ρ`. When `q` or `ρ` cannot be
    measured (fewer than 3 seeds in every class; a one-epoch seed run), the reliability is `None` and `dual_beta` does
    not follow the scores.
    """
    check = dict(seed_check or {})
    fit = within_class_rank_correlation(np.asarray(seed_values, dtype=np.float64), np.asarray(predicted),
                                        np.asarray(seed_labels))
    seed_reliability = check.get("reliability")
    reliability = None
    if fit is not None and seed_reliability is not None:
        reliability = min(max(fit, 0.0) ** 2, float(seed_reliability))
    check.update(seed_reliability=seed_reliability, extrapolation_fit=fit, reliability=reliability)
    if fit is None:
        check["unmeasurable"] = "the extrapolation's fit could not be measured (fewer than 3 seeds in every class)"
    elif seed_reliability is None:  # the seed run's scores cannot be checked, so neither can what they predict
        check["unmeasurable"] = f"the seed run's: {check.get('unmeasurable') or 'no self-check'}"
    return check


def _knn_graph(x: np.ndarray, k: int) -> torch.Tensor:
    """The symmetrically normalised adjacency (with self loops) of the kNN graph of the rows of `x`: every row's `k`
    nearest neighbours (no self loops), both directions, weight `sqrt(exp(−d))`."""
    n = len(x)
    neighbours, distances = nearest_seeds(x, np.arange(n), k + 1)
    rows = np.repeat(np.arange(n), neighbours.shape[1])
    cols = neighbours.reshape(-1)
    weights = np.sqrt(np.exp(-(distances.reshape(-1) - distances.min())))
    keep = rows != cols
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    rows = np.concatenate([rows, cols, np.arange(n)])
    cols_all = np.concatenate([cols, rows[: len(cols)], np.arange(n)])
    weights = np.concatenate([weights, weights, np.ones(n)])
    degree = np.bincount(rows, weights=weights, minlength=n)
    norm = weights / np.sqrt(degree[rows] * degree[cols_all])
    return torch.sparse_coo_tensor(
        torch.as_tensor(np.stack([rows, cols_all])), torch.as_tensor(norm, dtype=torch.float32), (n, n),
        check_invariants=True,
    ).coalesce()


class _GCN(torch.nn.Module):
    """Three graph-convolution layers `h ↦ Â (h W + b)` over a fixed normalised adjacency `Â`, ReLU and dropout 0.5
    between them, one output per row."""

    def __init__(self, adjacency: torch.Tensor, in_features: int, hidden: tuple[int, int]):
        super().__init__()
        self.adjacency = adjacency
        self.layers = torch.nn.ModuleList(
            [torch.nn.Linear(in_features, hidden[0]), torch.nn.Linear(hidden[0], hidden[1]),
             torch.nn.Linear(hidden[1], 1)]
        )

    def forward(self, h):
        for i, layer in enumerate(self.layers):
            h = torch.sparse.mm(self.adjacency, layer(h))
            if i < len(self.layers) - 1:
                h = torch.nn.functional.dropout(torch.relu(h), 0.5, self.training)
        return h.squeeze(1)


def _fit_best_epoch(model: _GCN, features: torch.Tensor, target: torch.Tensor, train_rows: torch.Tensor,
                    val_rows: torch.Tensor, epochs: int) -> tuple[float, np.ndarray]:
    """Full-batch MSE training on `train_rows` (Adam, lr 1e-3); returns the best validation Pearson correlation on
    `val_rows` and the predictions of that epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, best_pred = -np.inf, None
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        out = model(features)
        loss = torch.nn.functional.mse_loss(out[train_rows], target[train_rows])
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(features)
        corr = float(np.corrcoef(pred[val_rows].numpy(), target[val_rows].numpy())[0, 1]) if len(val_rows) > 2 else 0.0
        if np.isnan(corr):
            corr = -np.inf
        if corr > best or best_pred is None:
            best, best_pred = corr, pred.numpy().astype(np.float64)
    return best, best_pred


def gnn_extrapolate(
    embeddings: np.ndarray,
    labels: np.ndarray,
    seed_rows: np.ndarray,
    seed_values: np.ndarray,
    k: int = 10,
    hidden: tuple[int, int] = (512, 256),
    epochs: int = 35,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A 3-layer GCN over the kNN graph of all rows regresses the score from `[one-hot(y) ‖ embedding]`.

    Edges: the `k` nearest neighbours of every row (no self loops), weight `sqrt(exp(−d))`, symmetrically normalised
    with self loops. Trained full-batch with MSE on 90 % of the seeds (Adam, lr 1e-3, dropout 0.5); the epoch with
    the best Pearson correlation on the other 10 % is kept. Seeds keep their true values.
    """
    generator = torch.Generator().manual_seed(seed)
    n = len(embeddings)
    x = np.asarray(embeddings, dtype=np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    classes = int(np.max(labels)) + 1
    one_hot = torch.nn.functional.one_hot(torch.as_tensor(np.array(labels, dtype=np.int64)), classes).float()
    features = torch.cat([one_hot, torch.as_tensor(x)], 1)
    adjacency = _knn_graph(x, k)
    torch.manual_seed(seed)
    model = _GCN(adjacency, features.shape[1], hidden)
    seed_rows = np.asarray(seed_rows)
    # 90 % of the seeds train, the rest pick the epoch (all of them when there are too few to split).
    order = seed_rows[torch.randperm(len(seed_rows), generator=generator).numpy()]
    cut = max(1, int(round(0.9 * len(order))))
    train_rows, val_rows = torch.as_tensor(order[:cut]), torch.as_tensor(order[cut:] if cut < len(order) else order)
    # The target is standardised over the seeds, and the prediction mapped back.
    target = torch.zeros(n)
    values = np.asarray(seed_values, dtype=np.float64)
    center, scale = float(values.mean()), float(values.std() + 1e-12)
    target[torch.as_tensor(seed_rows)] = torch.as_tensor((values - center) / scale, dtype=torch.float32)
    best, best_pred = _fit_best_epoch(model, features, target, train_rows, val_rows, epochs)
    predicted = best_pred * scale + center
    predicted[seed_rows] = values
    return predicted, {"validation_pearson": best, "epochs": epochs}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=r)
        return sums[inverse] / counts[inverse]

    return float(np.corrcoef(ranks(np.asarray(a)), ranks(np.asarray(b)))[0, 1])


class Extrapolation:
    """Runs the subset training and predicts a score for every row (used by `HFPruner(..., extrapolate=...)`).

    Args:
        method (`str`): `"knn"` or `"gnn"`.
        fraction (`float`): Share of rows in the seed subset, in (0, 1] (default 0.1; 1.0 scores everything
            directly, which makes extrapolation the identity).
        k (`int`): Neighbours (default 10).
        weighted (`bool`): kNN with `exp(−d)` weights (default) or the plain mean.
    """

    def __init__(self, method: str = "knn", fraction: float = 0.1, k: int = 10, weighted: bool = True):
        if method not in METHODS:
            raise InvalidArgumentError(f"`extrapolate` must be one of {METHODS} or None, got {method!r}.")
        self.method = method
        self.fraction = check_number("extrapolate_fraction", fraction, 0, 1, low_open=True)
        self.k = check_int("extrapolate_k", k, minimum=1)
        self.weighted = bool(weighted)

    def options(self) -> dict[str, Any]:
        return {"method": self.method, "fraction": self.fraction, "k": self.k, "weighted": self.weighted}

    def seed_rows(self, n: int, seed: int) -> np.ndarray:
        count = max(2, int(round(self.fraction * n)))
        return np.sort(np.random.default_rng(seed + 15485863).choice(n, size=min(count, n), replace=False))

    def fresh_model(self, trainer) -> torch.nn.Module:
        if trainer.model_init is not None:
            return trainer.call_model_init()
        if trainer.state.global_step == 0:
            return copy.deepcopy(trainer.model)
        raise ScoreNotComputableError(
            "Score extrapolation trains a fresh model on the seed subset, but this trainer's model has already been "
            "trained and the trainer has no `model_init`. Pass `model_init=` to the trainer, or an untrained one."
        )

    def run(self, trainer, dataset, score: ScoreFunction, seed: int) -> tuple[ScoreOutput, Any]:
        """Train on the seeds, score them, embed everything, extrapolate. Returns the output and the subset record."""
        from .trainer import PruneTrainer

        if score.kind == "vector":
            raise InvalidArgumentError(
                f"Score `{score.name}` produces influence vectors, which cannot be extrapolated; extrapolate a scalar "
                "training-dynamics score (e.g. `dual`, `dyn_unc`, `el2n`)."
            )
        start = time.perf_counter()
        n = len(dataset)
        seeds = self.seed_rows(n, seed)
        if len(seeds) < max(50, 2 * self.k):
            logger.warning(
                f"hf_prune: `extrapolate_fraction={self.fraction:g}` of {n} rows trains the seed model on {len(seeds)} "
                f"rows, too few to score the rest from (k = {self.k} neighbours): the extrapolated scores will carry "
                "little signal. Use a fraction giving a few hundred rows."
            )
        # The seed run is the user's recipe on the seeds, with the trainer's eval set (the held-out gap that decides
        # the memorisation regime; without it the prequential gap reads far too high on short runs from scratch).
        args = replace(
            trainer.args,
            output_dir=os.path.join(trainer.args.output_dir, f"extrapolation-{self.fraction:g}-{seed}"),
            record_dir=None,
        )
        # With a `model_init` the Trainer seeds and builds the model exactly as it does for a full run.
        fresh = {"model_init": trainer.model_init} if trainer.model_init is not None else {
            "model": self.fresh_model(trainer)}
        subset_trainer = PruneTrainer(
            **fresh,
            args=args,
            data_collator=getattr(trainer.data_collator, "data_collator", trainer.data_collator),
            train_dataset=dataset.select(seeds),
            eval_dataset=trainer.tracked_eval_dataset,
            processing_class=trainer.processing_class,
        )
        from transformers import PrinterCallback

        subset_trainer.remove_callback(PrinterCallback)
        subset_trainer.train()
        train_seconds = time.perf_counter() - start
        record = subset_trainer.record
        seed_output = score(record, ScoringContext(seed=seed))
        embed_start = time.perf_counter()
        # The main trainer's training set carries the source-index column; embed it with the subset model.
        captured = subset_trainer.capture_head(trainer.train_dataset, with_index=True)
        order = np.empty(n, dtype=np.int64)
        order[captured["index"]] = np.arange(len(captured["index"]))
        embeddings = captured["features"][order]
        embed_seconds = time.perf_counter() - embed_start
        aux_names = sorted(seed_output.aux)
        stacked = np.column_stack([seed_output.values] + [np.asarray(seed_output.aux[a]) for a in aux_names])
        info: dict[str, Any] = {**self.options(), "seed_rows": len(seeds), "train_seconds": train_seconds,
                                "embed_seconds": embed_seconds, "score_info": seed_output.info}
        extra_start = time.perf_counter()
        predicted = knn_extrapolate(embeddings, seeds, stacked, self.k, self.weighted)
        values = predicted[:, 0]
        if self.method == "gnn":
            values, gnn_info = gnn_extrapolate(embeddings, np.asarray(trainer.prune_labels), seeds,
                                               seed_output.values, self.k, seed=seed)
            info["gnn"] = gnn_info
        # What the extrapolation can vouch for, measured on the seeds (see `extrapolation_check`).
        target = np.asarray(seed_output.aux.get("p_mean", seed_output.values), dtype=np.float64)
        labels = np.asarray(trainer.prune_labels)
        if len(seeds) == n:  # every row is a seed: the scores are the direct ones, and so is their self-check
            check = dict(seed_output.info.get("self_check") or {})
        else:
            check = extrapolation_check(seed_output.info.get("self_check"), target,
                                        leave_one_out_knn(embeddings, seeds, target, self.k, self.weighted),
                                        labels[seeds])
            if check.get("steps_per_epoch"):
                # A subset of the whole set is trained with the recipe's batches: its steps per epoch are the whole
                # set's, not the seed run's (the late-row rule counts a subset's optimizer steps with them).
                check["seed_steps_per_epoch"] = check["steps_per_epoch"]
                check["steps_per_epoch"] = float(check["steps_per_epoch"]) * n / len(seeds)
        info["extrapolate_seconds"] = time.perf_counter() - extra_start
        info["seconds"] = time.perf_counter() - start
        aux = {name: predicted[:, j + 1] for j, name in enumerate(aux_names)}
        return ScoreOutput(values=values, aux=aux, info={"extrapolation": info, "self_check": check}), record
