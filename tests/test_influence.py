"""SGD-Influence and influence functions against ground truth: true leave-one-out SGD, finite differences, dense
solves and convex leave-one-out retraining."""

from __future__ import annotations

import copy

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args

from hf_prune import HFPruner, PruneTrainer
from hf_prune.errors import InvalidArgumentError, RecordError, UnsupportedOptimizerError
from hf_prune.influence.influence_function import head_hessian, influence_function_vectors
from hf_prune.influence.replay import head_vector, kendall_tau, replay
from hf_prune.influence.sweep import SweepConfig, exact_layout_to_head, sgd_influence_sweep
from hf_prune.scores import get_score
from hf_prune.tracking.record import softmax


def logistic_task(n=200, d=5, C=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, C))
    y = (X @ W + rng.gumbel(size=(n, C))).argmax(1)
    Xe = rng.normal(size=(100, d)).astype(np.float32)
    ye = (Xe @ W + rng.gumbel(size=(100, C))).argmax(1)
    train = datasets.Dataset.from_dict({"x": X.tolist(), "label": y.tolist()})
    evalset = datasets.Dataset.from_dict({"x": Xe.tolist(), "label": ye.tolist()})
    return train, evalset, X, y, Xe, ye


def train_head_only(tmp_path, optim, lr, optim_args=None, n=200, d=5, C=3, **extra):
    train, evalset, X, y, Xe, ye = logistic_task(n, d, C)
    torch.manual_seed(0)
    model = IdentityHead(d, C)
    initial = copy.deepcopy(model)
    kw = dict(per_device_train_batch_size=20, num_train_epochs=3, learning_rate=lr, optim=optim, max_grad_norm=0.0,
              weight_decay=0.01, lr_scheduler_type="linear", **extra)
    if optim_args:
        kw["optim_args"] = optim_args
    trainer = PruneTrainer(model=model, args=quiet_args(tmp_path, **kw), train_dataset=train, eval_dataset=evalset)
    trainer.train()
    return trainer, initial, X, Xe, ye


def eval_loss(state, Xe, ye):
    z = torch.tensor(Xe, dtype=torch.float64) @ state["classifier.weight"].T + state["classifier.bias"]
    return float(torch.nn.functional.cross_entropy(z, torch.tensor(ye), reduction="sum"))


def compare_with_leave_one_out(trainer, initial, X, Xe, ye, samples, precision="float64"):
    record = trainer.record
    result = sgd_influence_sweep(record, SweepConfig(sketch_size=None, precision=precision))
    estimate = exact_layout_to_head(result.vectors, record.num_classes, record.feature_dim + 1)
    inputs = {"x": torch.tensor(X)}
    base = replay(initial, "classifier", inputs, record)
    final = {k: v.double() for k, v in trainer.model.state_dict().items()}
    for key in base:  # the replay reproduces the Trainer's run
        torch.testing.assert_close(base[key], final[key], atol=1e-5, rtol=0)
    theta = head_vector(base, "classifier")
    base_loss = eval_loss(base, Xe, ye)
    cosines, errors, true_change = [], [], []
    for j in samples:
        state = replay(initial, "classifier", inputs, record, removed=j)
        delta = head_vector(state, "classifier") - theta
        cosines.append(delta @ estimate[j] / np.linalg.norm(delta) / np.linalg.norm(estimate[j]))
        errors.append(np.linalg.norm(estimate[j] - delta) / np.linalg.norm(delta))
        true_change.append(eval_loss(state, Xe, ye) - base_loss)
    return np.array(cosines), np.array(errors), np.array(true_change), result


@pytest.mark.parametrize(
    ("optim_args", "lr"),
    [(None, 0.1), ("momentum=0.9", 0.05), ("momentum=0.9,nesterov=True", 0.05), ("momentum=0.9,dampening=0.1", 0.05)],
    ids=["sgd", "momentum", "nesterov", "dampening"],
)
def test_exact_case_matches_true_leave_one_out(tmp_path, optim_args, lr):
    trainer, initial, X, Xe, ye = train_head_only(tmp_path, "sgd", lr, optim_args)
    cos, err, true_change, result = compare_with_leave_one_out(trainer, initial, X, Xe, ye, range(200))
    # Per-sample parameter change, 30 samples: cosine >= 0.99 and relative error <= 5 % each.
    assert cos[:30].min() >= 0.99, cos[:30].min()
    assert err[:30].max() <= 0.05, err[:30].max()
    # Linear influence on the eval loss vs the true change of the eval loss, 200 samples.
    assert kendall_tau(result.eval_influence, true_change) >= 0.9


def test_adamw_derivative_is_exact_and_loo_agreement_has_a_floor(tmp_path):
    trainer, initial, X, Xe, ye = train_head_only(tmp_path, "adamw_torch", 0.01)
    record = trainer.record
    cos, err, true_change, result = compare_with_leave_one_out(trainer, initial, X, Xe, ye, range(200))
    # Documented floor (measured: median cosine 0.995, tau 0.81; Adam's normalised update is non-linear in one
    # sample's removal, mostly in the first steps where v is still small).
    assert np.median(cos) >= 0.98
    assert kendall_tau(result.eval_influence, true_change) >= 0.7
    # The recursion is the exact first-order derivative: compare with a finite difference of the loss weight.
    estimate = exact_layout_to_head(result.vectors, 3, 6)
    inputs = {"x": torch.tensor(X)}
    theta = head_vector(replay(initial, "classifier", inputs, record), "classifier")
    alpha = 1e-4
    for j in range(5):
        original = record.iter_steps

        def scaled(reverse=False, steps=None, j=j, original=original):
            for batch in original(reverse, steps):
                batch.weight = np.where(batch.index == j, batch.weight * (1 - alpha), batch.weight)
                yield batch

        record.iter_steps = scaled
        try:
            moved = head_vector(replay(initial, "classifier", inputs, record), "classifier")
        finally:
            record.iter_steps = original
        derivative = (moved - theta) / alpha
        cosine = derivative @ estimate[j] / np.linalg.norm(derivative) / np.linalg.norm(estimate[j])
        assert cosine > 0.9999
        assert np.linalg.norm(derivative - estimate[j]) / np.linalg.norm(derivative) < 1e-3


def test_hessian_free_is_learning_rate_weighted_gradient_sum(tmp_path):
    trainer, *_ = train_head_only(tmp_path, "sgd", 0.1)
    record = trainer.record
    full = sgd_influence_sweep(record, SweepConfig(sketch_size=None, hessian=False, query=False, precision="float64"))
    last = sgd_influence_sweep(
        record, SweepConfig(sketch_size=None, hessian=False, window_epochs=1, query=False, precision="float64")
    )
    # Without the Hessian, Z_t = I − η_t λ on the weights (coupled weight decay; HF puts the bias in the no-decay
    # group): s_j = Σ_t η_t Π_{s>t}(I − η_s Λ) g_j(t), a learning-rate-weighted sum of the sample's gradients.
    lam = record.optimizer["weight_group"]["weight_decay"]
    batches = list(record.iter_steps())
    decay = np.array([1.0 - b.lr[0] * lam for b in batches])
    later = np.append(np.cumprod(decay[::-1])[::-1][1:], 1.0)
    expected_full, expected_last = np.zeros((200, 18)), np.zeros((200, 18))
    for k, batch in enumerate(batches):
        feats = np.concatenate([batch.features, np.ones((len(batch.index), 1))], axis=1)
        column_scale = np.array([later[k]] * 5 + [1.0])
        for j, g, h in zip(batch.index, batch.logit_grad, feats):
            contribution = (batch.lr[0] * np.outer(g, h) * column_scale).reshape(-1)
            expected_full[j] += contribution
            if batch.epoch == record.epochs[-1]:
                expected_last[j] += contribution
    np.testing.assert_allclose(exact_layout_to_head(full.vectors, 3, 6), expected_full, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(exact_layout_to_head(last.vectors, 3, 6), expected_last, rtol=1e-6, atol=1e-10)


def test_sketch_preserves_norms_of_sums(tmp_path):
    trainer, *_ = train_head_only(tmp_path, "sgd", 0.1, n=300, d=40, C=10)
    record = trainer.record
    exact = sgd_influence_sweep(record, SweepConfig(sketch_size=None, query=False)).vectors
    sketch = sgd_influence_sweep(record, SweepConfig(sketch_size=256, query=False, seed=3)).vectors
    rng = np.random.default_rng(0)
    ratios = []
    for size in (5, 30, 100, 150):
        for _ in range(10):
            subset = rng.choice(300, size=size, replace=False)
            ratios.append(np.linalg.norm(sketch[subset].sum(0)) / np.linalg.norm(exact[subset].sum(0)))
    assert 0.85 <= min(ratios) and max(ratios) <= 1.15, (min(ratios), max(ratios))


def test_sgd_influence_score_through_pruner(tmp_path):
    trainer, *_ = train_head_only(tmp_path, "sgd", 0.1)
    pruner = HFPruner(trainer, method="sgd_influence", sketch_size="exact")
    pruned = pruner.prune(0.5)
    assert len(pruned) == 100
    assert set(pruned.column_names) >= {"source_index", "score_sgd_influence", "score_sgd_influence_eval"}
    vectors = pruner.compute_score().vectors
    np.testing.assert_allclose(pruner.compute_score().values, np.linalg.norm(vectors, axis=1), rtol=1e-5)
    info = pruner.result.info["selection"]
    assert info["norm_vs_random"] < 1.0  # the optimised set matches the full data's mean better than random


# ---------------------------------------------------------------------- influence functions
def test_influence_function_solvers_match_dense_algebra():
    rng = np.random.default_rng(0)
    n, d, C = 60, 4, 3
    feats = rng.normal(size=(n, d))
    logits = rng.normal(size=(n, C))
    labels = rng.integers(0, C, n)
    h = np.concatenate([feats, np.ones((n, 1))], axis=1)
    p = softmax(logits)
    # Dense Hessian from per-sample Kronecker products, feature-major order (a, c).
    dense = sum(np.kron(np.outer(h[i], h[i]), np.diag(p[i]) - np.outer(p[i], p[i])) for i in range(n)) / n
    np.testing.assert_allclose(head_hessian(h, p), dense, atol=1e-12)
    lam = 0.05
    g = np.stack([np.kron(h[i], p[i] - np.eye(C)[labels[i]]) for i in range(n)])
    expected = np.linalg.solve(dense + lam * np.eye(d * C + C), g.T).T / n
    vectors, _, info = influence_function_vectors(feats, logits, labels, True, damping=lam, sketch_size=None,
                                                  solver="cholesky")
    assert info["solver"] == "cholesky"
    np.testing.assert_allclose(vectors, expected, rtol=1e-8, atol=1e-12)
    # K-FAC: the exact inverse of the damped Kronecker approximation A ⊗ B.
    A = h.T @ h / n
    B = (np.diag(p.sum(0)) - p.T @ p) / n
    kfac_expected = np.linalg.solve(np.kron(A, B) + lam * np.eye(d * C + C), g.T).T / n
    kfac, _, _ = influence_function_vectors(feats, logits, labels, True, damping=lam, sketch_size=None, solver="kfac")
    np.testing.assert_allclose(kfac, kfac_expected, rtol=1e-7, atol=1e-12)


def test_influence_function_matches_convex_leave_one_out():
    rng = np.random.default_rng(1)
    n, d, C, lam = 80, 3, 3, 0.05
    X = torch.tensor(rng.normal(size=(n, d)))
    y = torch.tensor(rng.integers(0, C, n))

    def fit(weights):
        W = torch.zeros(C, d + 1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([W], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                                line_search_fn="strong_wolfe")
        Xa = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)

        def closure():
            opt.zero_grad()
            loss = (weights * torch.nn.functional.cross_entropy(Xa @ W.T, y, reduction="none")).sum() / n
            loss = loss + 0.5 * lam * (W * W).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return W.detach()

    full = fit(torch.ones(n, dtype=torch.float64))
    logits = (torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1) @ full.T).numpy()
    vectors, _, _ = influence_function_vectors(X.numpy(), logits, y.numpy(), True, damping=lam, sketch_size=None)
    estimate = exact_layout_to_head(vectors, C, d + 1)
    cosines = []
    for j in range(20):
        w = torch.ones(n, dtype=torch.float64)
        w[j] = 0
        delta = (fit(w) - full).reshape(-1).numpy()
        cosines.append(delta @ estimate[j] / np.linalg.norm(delta) / np.linalg.norm(estimate[j]))
    assert min(cosines) >= 0.99, min(cosines)


# ---------------------------------------------------------------------- bad input
def test_unknown_optimizer_is_named(tmp_path):
    trainer, *_ = train_head_only(tmp_path, "adagrad", 0.1)
    with pytest.raises(UnsupportedOptimizerError, match="optimizer 'Adagrad'.*supported: SGD, Adam, AdamW"):
        sgd_influence_sweep(trainer.record, SweepConfig())


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_sketch_size_must_be_positive(k):
    with pytest.raises(InvalidArgumentError, match="`sketch_size` must be a positive integer"):
        SweepConfig(sketch_size=k)
    with pytest.raises(InvalidArgumentError, match="`sketch_size` must be a positive integer"):
        get_score("sgd_influence", sketch_size=k)


def test_record_without_steps_in_window(tmp_path):
    trainer, *_ = train_head_only(tmp_path, "sgd", 0.1)
    with pytest.raises(InvalidArgumentError, match="`window_epochs=5` but the record holds 3 epoch"):
        sgd_influence_sweep(trainer.record, SweepConfig(window_epochs=5))


def test_record_without_features(tmp_path):
    trainer, *_ = train_head_only(tmp_path, "sgd", 0.1, track_features=False)
    with pytest.raises(RecordError, match="track_features=False"):
        sgd_influence_sweep(trainer.record, SweepConfig())


def test_fine_tuned_backbone_head_estimate(tmp_path):
    """Whole small CNN trained; the head-only estimate against the true leave-one-out change of the head.

    Measured (scripts/influence_accuracy.py): 3 epochs of momentum SGD on 300 digits, median cosine 0.99 and norm
    correlation 0.96 over 30 samples; it degrades with longer training (10 epochs: median cosine 0.34) and under
    AdamW (0.78), because the backbone's response to a removal, ignored by the head scope, accumulates. Asserted
    here only as a loose floor on the short run.
    """
    from hf_prune.tasks import load_digits_dataset, small_cnn

    train = load_digits_dataset("train").select(range(300)).with_format("torch")
    torch.manual_seed(0)
    model = small_cnn(image_size=8, conv_channels=(8, 16), hidden_size=32)
    initial = copy.deepcopy(model)
    args = quiet_args(tmp_path, per_device_train_batch_size=32, num_train_epochs=3, learning_rate=0.05, optim="sgd",
                      optim_args="momentum=0.9", max_grad_norm=0.0, weight_decay=5e-4)
    trainer = PruneTrainer(model=model, args=args, train_dataset=train)
    trainer.train()
    record = trainer.record
    result = sgd_influence_sweep(record, SweepConfig(sketch_size=None, precision="float64"))
    estimate = exact_layout_to_head(result.vectors, 10, 33)
    inputs = {"pixel_values": torch.tensor(np.array(train["pixel_values"]))}
    theta = head_vector(replay(initial, "classifier", inputs, record), "classifier")
    cosines, true_norms, est_norms = [], [], []
    for j in range(30):
        delta = head_vector(replay(initial, "classifier", inputs, record, removed=j), "classifier") - theta
        cosines.append(delta @ estimate[j] / np.linalg.norm(delta) / np.linalg.norm(estimate[j]))
        true_norms.append(np.linalg.norm(delta))
        est_norms.append(np.linalg.norm(estimate[j]))
    assert np.median(cosines) >= 0.9
    assert np.corrcoef(true_norms, est_norms)[0, 1] >= 0.8
