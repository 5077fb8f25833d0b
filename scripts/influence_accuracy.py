"""How close SGD-Influence is to true leave-one-out SGD: the numbers quoted in the README.

    python scripts/influence_accuracy.py

Part 1, exact case: softmax regression on fixed features (200 training, 100 eval rows, 3 epochs, batch 20, weight
decay 0.01, linear schedule), trained by `PruneTrainer` with each optimizer; for every training row the same run is
replayed with that row's loss weight set to 0 (same batches, same denominators). Reports the cosine and relative
error between the true and the estimated change of the head (30 rows), and Kendall's tau between the estimated and
the true change of the summed eval loss (200 rows).

Part 2, fine-tuned backbone: the whole small CNN is trained on 300 sklearn digits; the head-only estimate is compared
with the true leave-one-out change of the head after replaying the *whole network* (30 rows).

The last line summarises: `exact_sgd_cos_min=<x> momentum_cos_min=<x> adamw_cos_median=<x> backbone_cos_median=<x>`.
"""

from __future__ import annotations

import copy
import tempfile

import datasets
import numpy as np
import torch
from torch import nn

from hf_prune import PruneArguments, PruneTrainer, logging
from hf_prune.influence.replay import head_vector, kendall_tau, replay
from hf_prune.influence.sweep import SweepConfig, exact_layout_to_head, sgd_influence_sweep


class Head(nn.Module):
    def __init__(self, d: int, c: int):
        super().__init__()
        self.classifier = nn.Linear(d, c)

    def forward(self, x, labels=None):
        logits = self.classifier(x)
        return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels) if labels is not None else None}


def args(out: str, **kw) -> PruneArguments:
    return PruneArguments(output_dir=out, report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                          dataloader_pin_memory=False, use_cpu=True, seed=0, data_seed=0, max_grad_norm=0.0, **kw)


def exact_case(optim: str, lr: float, optim_args: str | None) -> dict[str, float]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    W = rng.normal(size=(5, 3))
    y = (X @ W + rng.gumbel(size=(200, 3))).argmax(1)
    Xe = rng.normal(size=(100, 5)).astype(np.float32)
    ye = (Xe @ W + rng.gumbel(size=(100, 3))).argmax(1)
    train = datasets.Dataset.from_dict({"x": X.tolist(), "label": y.tolist()})
    evalset = datasets.Dataset.from_dict({"x": Xe.tolist(), "label": ye.tolist()})
    torch.manual_seed(0)
    model = Head(5, 3)
    initial = copy.deepcopy(model)
    with tempfile.TemporaryDirectory() as out:
        extra = {"optim_args": optim_args} if optim_args else {}
        trainer = PruneTrainer(model=model, args=args(out, per_device_train_batch_size=20, num_train_epochs=3,
                                                      learning_rate=lr, optim=optim, weight_decay=0.01,
                                                      lr_scheduler_type="linear", **extra),
                               train_dataset=train, eval_dataset=evalset)
        trainer.train()
        record = trainer.record
        result = sgd_influence_sweep(record, SweepConfig(sketch_size=None, precision="float64"))
        estimate = exact_layout_to_head(result.vectors, 3, 6)
        inputs = {"x": torch.tensor(X)}
        base = replay(initial, "classifier", inputs, record)
        theta = head_vector(base, "classifier")

        def eval_loss(state):
            z = torch.tensor(Xe, dtype=torch.float64) @ state["classifier.weight"].T + state["classifier.bias"]
            return float(nn.functional.cross_entropy(z, torch.tensor(ye), reduction="sum"))

        base_loss = eval_loss(base)
        cos, err, change = [], [], []
        for j in range(200):
            state = replay(initial, "classifier", inputs, record, removed=j)
            delta = head_vector(state, "classifier") - theta
            if j < 30:
                cos.append(delta @ estimate[j] / np.linalg.norm(delta) / np.linalg.norm(estimate[j]))
                err.append(np.linalg.norm(estimate[j] - delta) / np.linalg.norm(delta))
            change.append(eval_loss(state) - base_loss)
    return {"cos_min": float(np.min(cos)), "cos_median": float(np.median(cos)), "err_max": float(np.max(err)),
            "err_median": float(np.median(err)), "tau": kendall_tau(result.eval_influence, np.array(change))}


def backbone_case(optim: str, lr: float, optim_args: str | None, epochs: int) -> dict[str, float]:
    from hf_prune.tasks import load_digits_dataset, small_cnn

    train = load_digits_dataset("train").select(range(300)).with_format("torch")
    torch.manual_seed(0)
    model = small_cnn(image_size=8, conv_channels=(8, 16), hidden_size=32)
    initial = copy.deepcopy(model)
    with tempfile.TemporaryDirectory() as out:
        extra = {"optim_args": optim_args} if optim_args else {}
        trainer = PruneTrainer(model=model, args=args(out, per_device_train_batch_size=32, num_train_epochs=epochs,
                                                      learning_rate=lr, optim=optim, weight_decay=5e-4, **extra),
                               train_dataset=train)
        trainer.train()
        record = trainer.record
        estimate = exact_layout_to_head(
            sgd_influence_sweep(record, SweepConfig(sketch_size=None, precision="float64")).vectors, 10, 33
        )
        inputs = {"pixel_values": torch.tensor(np.array(train["pixel_values"]))}
        theta = head_vector(replay(initial, "classifier", inputs, record), "classifier")
        cos, true_norm, est_norm = [], [], []
        for j in range(30):
            delta = head_vector(replay(initial, "classifier", inputs, record, removed=j), "classifier") - theta
            cos.append(delta @ estimate[j] / np.linalg.norm(delta) / np.linalg.norm(estimate[j]))
            true_norm.append(np.linalg.norm(delta))
            est_norm.append(np.linalg.norm(estimate[j]))
    return {"cos_median": float(np.median(cos)), "cos_min": float(np.min(cos)),
            "norm_corr": float(np.corrcoef(true_norm, est_norm)[0, 1])}


def main() -> None:
    logging.set_verbosity_error()
    datasets.disable_progress_bars()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    print("exact case (head-only softmax regression), true leave-one-out SGD replays")
    exact = {}
    for name, optim, lr, optim_args in [
        ("SGD lr 0.1", "sgd", 0.1, None),
        ("SGD momentum 0.9, lr 0.05", "sgd", 0.05, "momentum=0.9"),
        ("SGD momentum 0.9, lr 0.1", "sgd", 0.1, "momentum=0.9"),
        ("SGD Nesterov 0.9, lr 0.05", "sgd", 0.05, "momentum=0.9,nesterov=True"),
        ("AdamW lr 0.01", "adamw_torch", 0.01, None),
        ("AdamW lr 0.003", "adamw_torch", 0.003, None),
    ]:
        exact[name] = row = exact_case(optim, lr, optim_args)
        print(f"  {name:28s} cosine min {row['cos_min']:.4f} median {row['cos_median']:.4f} | relative error max "
              f"{row['err_max']:.3f} median {row['err_median']:.3f} | Kendall tau (eval loss, 200 rows) {row['tau']:.3f}",
              flush=True)
    print("fine-tuned backbone (whole small CNN on 300 digits), head-only estimate vs true head change")
    backbone = {}
    for name, optim, lr, optim_args, epochs in [
        ("SGD momentum 0.9, 3 epochs", "sgd", 0.05, "momentum=0.9", 3),
        ("SGD momentum 0.9, 10 epochs", "sgd", 0.05, "momentum=0.9", 10),
        ("AdamW lr 0.003, 3 epochs", "adamw_torch", 0.003, None, 3),
    ]:
        backbone[name] = row = backbone_case(optim, lr, optim_args, epochs)
        print(f"  {name:28s} cosine median {row['cos_median']:.3f} min {row['cos_min']:.3f} | correlation of norms "
              f"{row['norm_corr']:.3f}", flush=True)
    print(f"exact_sgd_cos_min={exact['SGD lr 0.1']['cos_min']:.4f} "
          f"momentum_cos_min={exact['SGD momentum 0.9, lr 0.05']['cos_min']:.4f} "
          f"adamw_cos_median={exact['AdamW lr 0.01']['cos_median']:.4f} "
          f"backbone_cos_median={backbone['SGD momentum 0.9, 3 epochs']['cos_median']:.3f}")


if __name__ == "__main__":
    main()
