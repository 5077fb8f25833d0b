"""Influence functions on the head at the final model (Yang et al., ICLR 2023; Koh & Liang 2017).

`s_i = (1/n) (H + λI)⁻¹ g_i` with `g_i = (softmax(z_i) − e_{y_i}) ⊗ [h_i; 1]` and
`H = (1/n) Σ_i (diag p_i − p_i p_iᵀ) ⊗ h̃_i h̃_iᵀ` (https://huggingface.co/papers/2205.09329). `H` is singular
(softmax rows sum to one), so damping `λ` is mandatory: by default the head's weight decay, else
`1e-3 · trace(H) / P`. Solvers: Cholesky of the explicit `P × P` matrix for small heads, or the damped Kronecker
(K-FAC) approximation `H ≈ A ⊗ B`, `A = E[h̃h̃ᵀ]`, `B = E[diag p − ppᵀ]`, inverted exactly through the
eigen-decompositions of `A` and `B`.

Vectors use the sweep's coordinate order (feature-major `(D, C)`) and the same sketch convention
(`ŝ_i = Ωᵀ s_i`, Gaussian `Ω` with variance `1/k`, or exact).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..tracking.record import softmax


def _augment(features: np.ndarray, bias: bool) -> np.ndarray:
    if bias:
        return np.concatenate([features, np.ones((len(features), 1))], axis=1)
    return features


def head_hessian(features: np.ndarray, probs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Mean head Hessian of softmax cross-entropy, `(D·C) × (D·C)` in feature-major order (`index = a·C + c`)."""
    n, D = features.shape
    C = probs.shape[1]
    H = np.zeros((D * C, D * C))
    for lo in range(0, n, chunk):
        h = features[lo : lo + chunk]
        p = probs[lo : lo + chunk]
        # diag(p) ⊗ h hᵀ  -> for each class c: Σ_i p_ic h_i h_iᵀ on the (a, c), (a', c) entries.
        for c in range(C):
            block = (h * p[:, c : c + 1]).T @ h
            H[c::C, c::C] += block
        Q = (h[:, :, None] * p[:, None, :]).reshape(len(h), D * C)
        H -= Q.T @ Q
    return H / n


def default_damping(trace: float, size: int, weight_decay: float) -> float:
    return float(weight_decay) if weight_decay > 0 else 1e-3 * trace / size


def influence_function_vectors(
    features: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    has_bias: bool,
    damping: float | None = None,
    weight_decay: float = 0.0,
    sketch_size: int | None = 256,
    eval_sketch_size: int = 0,
    seed: int = 0,
    solver: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Per-sample influence vectors `ŝ_i = Ωᵀ (1/n)(H + λI)⁻¹ g_i` at the final model.

    Args:
        features, logits, labels: Head input, logits and labels of every training row at the final model.
        has_bias (`bool`): Whether the head has a bias (appends the constant feature).
        damping (`float`, *optional*): `λ`; default from `weight_decay` or the trace rule.
        sketch_size (`int` or `None`): Sketch columns `k`, or `None` for exact vectors.
        eval_sketch_size (`int`): Extra independent sketch columns returned separately (for unbiased objective
            reports).
        solver (`str`): `"cholesky"`, `"kfac"`, or `"auto"` (Cholesky up to 4,096 head parameters).

    Returns:
        `(vectors, eval_vectors, info)`.
    """
    if solver not in ("auto", "cholesky", "kfac"):
        raise InvalidArgumentError(f"`solver` must be 'auto', 'cholesky' or 'kfac', got {solver!r}.")
    feats = _augment(np.asarray(features, dtype=np.float64), has_bias)
    n, D = feats.shape
    probs = softmax(np.asarray(logits, dtype=np.float64))
    C = probs.shape[1]
    P = D * C
    residual = probs.copy()
    residual[np.arange(n), np.asarray(labels)] -= 1.0
    if solver == "auto":
        solver = "cholesky" if P <= 4096 else "kfac"
    rng = np.random.default_rng(seed)
    k = P if sketch_size is None else int(sketch_size)
    omega = np.eye(P) if sketch_size is None else rng.standard_normal((P, k)) / math.sqrt(k)
    if eval_sketch_size:
        omega_eval = np.random.default_rng(seed + 7919).standard_normal((P, eval_sketch_size)) / math.sqrt(
            eval_sketch_size
        )
        omega = np.concatenate([omega, omega_eval], axis=1)
    if solver == "cholesky":
        H = head_hessian(feats, probs)
        lam = damping if damping is not None else default_damping(np.trace(H), P, weight_decay)
        H[np.diag_indices_from(H)] += lam
        L = np.linalg.cholesky(H)
        V = np.linalg.solve(L.T, np.linalg.solve(L, omega))  # (H + λI)⁻¹ Ω
    else:
        A = feats.T @ feats / n
        B = (np.diag(probs.sum(axis=0)) - probs.T @ probs) / n
        eig_a, vec_a = np.linalg.eigh(A)
        eig_b, vec_b = np.linalg.eigh(B)
        trace = float(np.trace(A) * np.trace(B))
        lam = damping if damping is not None else default_damping(trace, P, weight_decay)
        # (A ⊗ B + λI)⁻¹ Ω with Ω reshaped to (D, C, K): rotate, divide by the eigenvalue products, rotate back.
        K = omega.shape[1]
        Om = omega.reshape(D, C, K)
        rotated = np.einsum("ad,cb,ack->dbk", vec_a, vec_b, Om, optimize=True)
        rotated /= (np.maximum(eig_a, 0)[:, None, None] * np.maximum(eig_b, 0)[None, :, None] + lam)
        V = np.einsum("ad,cb,dbk->ack", vec_a, vec_b, rotated, optimize=True).reshape(P, K)
    # ŝ_i = (1/n) g_iᵀ V with g_i = h̃_i ⊗ r_i in (a, c) order.
    out = np.empty((n, V.shape[1]))
    Vr = V.reshape(D, C, V.shape[1])
    chunk = 2048
    for lo in range(0, n, chunk):
        A_ = np.einsum("bd,dck->bck", feats[lo : lo + chunk], Vr, optimize=True)
        out[lo : lo + chunk] = np.einsum("bc,bck->bk", residual[lo : lo + chunk], A_) / n
    vectors, eval_vectors = out[:, :k], (out[:, k:] if eval_sketch_size else None)
    info = {"solver": solver, "damping": float(lam), "head_size": P, "sketch_size": sketch_size}
    return vectors, eval_vectors, info
