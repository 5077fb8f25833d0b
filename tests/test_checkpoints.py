"""Scoring from saved checkpoints (`HFPruner.from_checkpoints`): closed-form values, row alignment and refusals."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, vector_dataset
from record_utils import synthetic_record
from torch import nn

from hf_prune import HFPruner
from hf_prune.checkpoints import record_checkpoints
from hf_prune.errors import DatasetError, InvalidArgumentError, ScoreNotComputableError, UnsupportedModelError
from hf_prune.scores import get_score


DIM = 3


def checkpoint(seed: int, num_classes: int = 2, bias: bool = True) -> IdentityHead:
    """A tiny classifier with fixed weights: logits = x Wᵀ + b."""
    model = IdentityHead(dim=DIM, num_classes=num_classes, bias=bias)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(rng.normal(size=(num_classes, DIM)), dtype=torch.float32))
        if bias:
            model.classifier.bias.copy_(torch.tensor(rng.normal(size=num_classes), dtype=torch.float32))
    return model


def residuals(model: IdentityHead, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    weight = model.classifier.weight.detach().double().numpy()
    logits = x.astype(np.float64) @ weight.T
    if model.classifier.bias is not None:
        logits = logits + model.classifier.bias.detach().double().numpy()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return probs - np.eye(weight.shape[0])[y]


def augmented(x: np.ndarray, bias: bool) -> np.ndarray:
    x = x.astype(np.float64)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1) if bias else x


@pytest.mark.parametrize("bias", [True, False])
def test_scores_equal_their_closed_forms(tmp_path, bias):
    dataset, x, y = vector_dataset(n=8, dim=DIM, num_classes=2, seed=1)
    eval_dataset, x_eval, y_eval = vector_dataset(n=5, dim=DIM, num_classes=2, seed=2)
    models = [checkpoint(10, bias=bias), checkpoint(11, bias=bias)]
    models[0].train()
    models[1].eval()
    rates = [0.5, 0.25]
    record = record_checkpoints(models, dataset, tmp_path / "record", eval_dataset=eval_dataset,
                                learning_rates=rates, batch_size=3)

    r = [residuals(m, x, y) for m in models]
    el2n = [np.linalg.norm(rk, axis=1) for rk in r]
    np.testing.assert_allclose(get_score("el2n")(record).values, el2n[0], rtol=1e-5)  # first half: checkpoint 1
    np.testing.assert_allclose(get_score("el2n", epochs=2)(record).values, (el2n[0] + el2n[1]) / 2, rtol=1e-5)

    h = augmented(x, bias)
    self_influence = sum(eta * (rk * rk).sum(1) * (h * h).sum(1) for eta, rk in zip(rates, r))
    h_eval = augmented(x_eval, bias)
    eval_influence = np.zeros(len(x))
    for eta, model, rk in zip(rates, models, r):
        gradient = residuals(model, x_eval, y_eval).T @ h_eval  # Σ_{z'} r' h̃'ᵀ, (C, D̃)
        eval_influence += eta * np.einsum("ic,cd,id->i", rk, gradient, h)
    tracin = get_score("tracin_cp")(record)
    np.testing.assert_allclose(tracin.values, self_influence, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(tracin.extra["tracin_cp_eval"], eval_influence, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(get_score("tracin_cp", target="eval")(record).values, eval_influence, rtol=1e-5,
                               atol=1e-7)
    assert tracin.info["checkpoints"]["count"] == 2 and tracin.info["checkpoints"]["weights"] == rates

    # The caller's models are left as they were: no hooks, same mode.
    assert models[0].training and not models[1].training
    assert not models[0].classifier._forward_hooks and not models[0].classifier._forward_pre_hooks
    assert not models[0]._forward_hooks
    # The eval accuracy at the last checkpoint is the run's held-out figure.
    eval_correct = (residuals(models[1], x_eval, y_eval)[np.arange(5), y_eval] > -0.5).mean()
    assert get_score("dual")(record).info["self_check"]["eval_accuracy"] == pytest.approx(eval_correct)


def test_tracin_cp_on_a_training_record_weights_by_the_step_learning_rate(tmp_path):
    feats = {0: np.array([3.0, 4.0]), 1: np.array([0.0, 0.0]), 2: np.array([1.0, 2.0])}
    logits = np.array([[0.2, 1.0], [1.5, -0.5], [0.0, 0.3]])
    labels = np.array([1, 0, 1])
    epochs = [[(i, logits[i]) for i in range(3)], [(i, logits[i] * 2) for i in (2, 0, 1)]]
    record = synthetic_record(tmp_path / "r", labels, epochs, num_classes=2, features=feats)
    h2 = np.array([25.0, 0.0, 5.0]) + 1.0
    expected = sum(0.1 * (residual * residual).sum(1) * h2
                   for residual in (residuals_of(logits, labels), residuals_of(2 * logits, labels)))
    np.testing.assert_allclose(get_score("tracin_cp")(record).values, expected, rtol=1e-5)
    with pytest.raises(ScoreNotComputableError, match="target='eval'.*holds none"):
        get_score("tracin_cp", target="eval")(record)
    with pytest.raises(InvalidArgumentError, match="`target` must be 'self' or 'eval'"):
        get_score("tracin_cp", target="others")


def residuals_of(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return probs - np.eye(2)[labels]


def test_shuffled_dataset_gets_the_same_score_per_row(tmp_path):
    dataset, _, _ = vector_dataset(n=12, dim=DIM, num_classes=2, seed=3)
    dataset = dataset.add_column("row_id", list(range(100, 112)))
    shuffled = dataset.shuffle(seed=7)
    models = [checkpoint(20), checkpoint(21)]

    def scores_by_id(data, name):
        pruner = HFPruner.from_checkpoints(models, data, method="tracin_cp", output_dir=tmp_path / name,
                                           batch_size=5)
        table = pruner.scores(methods=["el2n", "forgetting"])
        ids = np.asarray(data["row_id"])[np.asarray(table["source_index"])]
        return {column: dict(zip(ids, np.asarray(table[column]))) for column in table.column_names
                if column.startswith("score_")}

    original, reordered = scores_by_id(dataset, "a"), scores_by_id(shuffled, "b")
    assert set(original) == {"score_tracin_cp", "score_el2n", "score_forgetting"}
    for column, values in original.items():
        for row_id, value in values.items():
            assert reordered[column][row_id] == pytest.approx(value, rel=1e-6), (column, row_id)


def test_from_checkpoints_prunes_and_says_where_scores_came_from(tmp_path):
    dataset, _, _ = vector_dataset(n=12, dim=DIM, num_classes=2, seed=4)
    pruner = HFPruner.from_checkpoints([checkpoint(30), checkpoint(31)], dataset, output_dir=tmp_path)
    pruned = pruner.prune(0.5)
    assert len(pruned) == 6
    assert pruned.column_names == ["x", "label", "source_index", "score_dual"]
    info = pruner.result.info["score_info"]["dual"]["checkpoints"]
    assert info["count"] == 2 and info["weights_from"] == "uniform" and info["weights"] == [1.0, 1.0]
    assert pruner.record.meta["source"] == "checkpoints" and pruner.record.path == tmp_path / "prune_record"


def test_the_default_does_not_follow_a_checkpoint_records_agreement(tmp_path, caplog):
    # Two checkpoints that agree perfectly on every row's difficulty (the same model twice): on a checkpoint record
    # that agreement says the checkpoints are stable, not which rows are hard, so the default keeps a class-stratified
    # random subset and says why; the agreement itself is reported.
    dataset, _, _ = vector_dataset(n=40, dim=DIM, num_classes=2, seed=5)
    pruner = HFPruner.from_checkpoints([checkpoint(30), checkpoint(30)], dataset, output_dir=tmp_path)
    with caplog.at_level("WARNING", logger="hf_prune"):
        pruner.prune(0.5)
    selection = pruner.result.info["selection"]
    assert selection["trust"] == 0.0 and "a checkpoint record" in selection["trust_reason"]
    assert selection["self_check"]["reliability"] is None
    assert selection["self_check"]["checkpoint_agreement"] == pytest.approx(1.0)
    assert "does not follow them" in caplog.text and "PruneTrainer" in caplog.text
    # Two checkpoints are not two epochs of one run: no row is "learned late", whatever the budget.
    assert "learned_epoch" not in pruner.result.aux and selection["late_set_aside"] == 0
    labels = np.asarray(dataset["label"])
    kept = np.bincount(labels[pruner.result.kept], minlength=2)
    assert np.all(np.abs(kept - 20 * np.bincount(labels) / 40) < 1.0)  # every class its share


def test_trajectory_scores_refuse_a_checkpoint_record(tmp_path):
    dataset, _, _ = vector_dataset(n=8, dim=DIM, num_classes=2)
    models = [checkpoint(40), checkpoint(41)]
    record = record_checkpoints(models, dataset, tmp_path / "record")
    for method in ("sgd_influence", "sgd_influence_eval"):
        with pytest.raises(ScoreNotComputableError, match=r"optimizer's trajectory.*2 saved checkpoint.*PruneTrainer"):
            HFPruner(record=str(tmp_path / "record"), dataset=dataset, method=method).prune(0.5)
    # Refused before any forward pass: nothing is written.
    with pytest.raises(ScoreNotComputableError, match="optimizer's trajectory"):
        HFPruner.from_checkpoints(models, dataset, method="sgd_influence", output_dir=tmp_path / "never")
    assert not (tmp_path / "never" / "prune_record").exists()
    # Scores that read the final model work: the last checkpoint's pass.
    assert np.isfinite(get_score("influence_function")(record).values).all()


def test_refusals(tmp_path):
    dataset, _, _ = vector_dataset(n=8, dim=DIM, num_classes=2)
    with pytest.raises(UnsupportedModelError, match=r"head `classifier` has 3 outputs.*`label` has 2 classes"):
        record_checkpoints([checkpoint(1), checkpoint(2, num_classes=3)], dataset, tmp_path / "a")
    assert not (tmp_path / "a").exists()  # the first checkpoint's pass is not left behind as a half record
    with pytest.raises(UnsupportedModelError, match="disagree on the head"):
        record_checkpoints([checkpoint(1), checkpoint(2, bias=False)], dataset, tmp_path / "b")
    plain = datasets.Dataset.from_dict({"x": np.zeros((4, DIM)).tolist(), "label": [0, 1, 2, 1]})
    with pytest.raises(UnsupportedModelError, match=r"2 outputs.*3 classes \(its largest label id is 2\)"):
        record_checkpoints([checkpoint(1)], plain, tmp_path / "c")
    bad_eval = datasets.Dataset.from_dict({"x": np.zeros((3, DIM)).tolist(), "label": [0, 2, 1]})
    with pytest.raises(DatasetError, match=r"`eval_dataset` has label ids outside \[0, 2\)"):
        record_checkpoints([checkpoint(1)], dataset, tmp_path / "d", eval_dataset=bad_eval)
    with pytest.raises(DatasetError, match="`label_column='target'` is not a column"):
        record_checkpoints([checkpoint(1)], dataset, tmp_path / "e", label_column="target")
    with pytest.raises(DatasetError, match="no label column"):
        record_checkpoints([checkpoint(1)], dataset.remove_columns("label"), tmp_path / "f")
    with pytest.raises(InvalidArgumentError, match="`checkpoints` is empty"):
        record_checkpoints([], dataset, tmp_path / "g")
    with pytest.raises(InvalidArgumentError, match="`learning_rates` must hold 2 finite"):
        record_checkpoints([checkpoint(1), checkpoint(2)], dataset, tmp_path / "h", learning_rates=[0.1])
    with pytest.raises(InvalidArgumentError, match="neither a saved model nor a Trainer output directory"):
        record_checkpoints([tmp_path], dataset, tmp_path / "i")

    class Doubled(IdentityHead):
        def forward(self, x, labels=None):
            return {"logits": 2 * self.classifier(x)}

    with pytest.raises(UnsupportedModelError, match="does not produce the model's logits"):
        record_checkpoints([Doubled(dim=DIM, num_classes=2)], dataset, tmp_path / "j")


def test_trainer_checkpoint_directories(tmp_path):
    """`save_pretrained` checkpoints in a Trainer output dir: loaded by step order, η_k read from trainer_state.json."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    run = tmp_path / "run"
    models = {}
    for step, rate in ((5, 0.02), (10, 0.01)):  # "checkpoint-10" sorts before "checkpoint-5" as text
        torch.manual_seed(step)
        model = BertForSequenceClassification(config).eval()
        model.save_pretrained(run / f"checkpoint-{step}")
        state = {"global_step": step, "log_history": [{"step": s, "learning_rate": rate + 0.001 * (step - s),
                                                       "loss": 0.5} for s in range(1, step + 1, 2)]}
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
        models[step] = model
    models[10].save_pretrained(run)  # `trainer.save_model()`'s final model beside the checkpoints is not one of them
    rng = np.random.default_rng(0)
    dataset = datasets.Dataset.from_dict({
        "input_ids": rng.integers(1, 40, size=(6, 5)).tolist(), "attention_mask": np.ones((6, 5), int).tolist(),
        "label": [0, 1, 0, 1, 1, 0],
    })
    from_dirs = record_checkpoints(run, dataset, tmp_path / "dirs")
    assert from_dirs.meta["checkpoints"]["names"] == [str(run / "checkpoint-5"), str(run / "checkpoint-10")]
    # The last rate logged at or before each checkpoint's step (step 5 of checkpoint-5, step 9 of checkpoint-10).
    assert from_dirs.meta["checkpoints"]["weights"] == pytest.approx([0.02, 0.011])
    assert from_dirs.meta["checkpoints"]["weights_from"] == "trainer_state"
    from_objects = record_checkpoints([models[5], models[10]], dataset, tmp_path / "objects",
                                      learning_rates=[0.02, 0.011])
    for name in ("tracin_cp", "el2n", "forgetting"):
        np.testing.assert_allclose(get_score(name)(from_dirs).values, get_score(name)(from_objects).values,
                                   rtol=1e-5)


def test_every_checkpoint_is_forward_only(tmp_path):
    """No parameter of the caller's model changes, and nothing is trained (no gradient is left behind)."""
    dataset, _, _ = vector_dataset(n=8, dim=DIM, num_classes=2)
    model = checkpoint(50)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    record_checkpoints([model], dataset, tmp_path / "record")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(model, nn.Module)


def test_a_training_runs_record_is_never_replaced(tmp_path, caplog):
    # A PruneTrainer's record cannot be made again without training again: writing the checkpoints' record into its
    # folder is refused and leaves every file as it was; an earlier checkpoints' record is replaced (it can be re-made).
    from conftest import quiet_args

    from hf_prune import PruneTrainer
    from hf_prune.errors import RecordError

    dataset, _, _ = vector_dataset(n=24, dim=DIM, num_classes=2, seed=5)
    trainer = PruneTrainer(model=checkpoint(40), args=quiet_args(tmp_path / "run"), train_dataset=dataset)
    trainer.train()
    record_dir = tmp_path / "run" / "prune_record"
    before = {path: path.read_bytes() for path in sorted(record_dir.rglob("*")) if path.is_file()}
    with pytest.raises(RecordError, match="holds the record of a training run .* Pass another `output_dir`"):
        HFPruner.from_checkpoints([checkpoint(41)], dataset, output_dir=tmp_path / "run")
    assert {path: path.read_bytes() for path in sorted(record_dir.rglob("*")) if path.is_file()} == before
    assert HFPruner(trainer, method="el2n").prune(0.5).num_rows == 12  # the run's record still reads
    first = HFPruner.from_checkpoints([checkpoint(42)], dataset, output_dir=tmp_path / "ckpt")
    with caplog.at_level("WARNING", logger="hf_prune"):
        second = HFPruner.from_checkpoints([checkpoint(43), checkpoint(44)], dataset, output_dir=tmp_path / "ckpt")
    assert len(second.record.meta["checkpoints"]["names"]) == 2
    assert "Replacing the earlier checkpoints' record" in caplog.text
    # The first pruner's record was replaced under it: it refuses to score the second call's checkpoints.
    with pytest.raises(RecordError, match="was replaced after this pruner wrote it .* its own `output_dir`"):
        first.compute_score()
    third = HFPruner.from_checkpoints([checkpoint(42)], dataset, output_dir=tmp_path / "other")
    assert len(third.record.meta["checkpoints"]["names"]) == 1  # its own output_dir: its own record


def test_a_with_transform_dataset_reaches_its_transform(tmp_path):
    """A dataset whose transform reads raw columns (the README's image pipeline: `with_transform`): the checkpoints'
    passes keep those columns for it (the Trainer's column pruning dropped them: `KeyError`), and the scores are those
    of the same rows given as plain columns."""
    plain, _, _ = vector_dataset(n=20, dim=DIM, num_classes=2, seed=7)
    raw = plain.rename_column("x", "raw")

    def to_inputs(batch):
        return {"x": torch.tensor(batch["raw"], dtype=torch.float32), "labels": torch.tensor(batch["label"])}

    transformed = raw.with_transform(to_inputs)
    with_transform = HFPruner.from_checkpoints([checkpoint(50)], transformed, method="el2n",
                                               output_dir=tmp_path / "t").compute_score().values
    reference = HFPruner.from_checkpoints([checkpoint(50)], plain, method="el2n",
                                          output_dir=tmp_path / "p").compute_score().values
    np.testing.assert_allclose(with_transform, reference, rtol=1e-6)


def test_saved_small_cnn_checkpoints_load_by_path(tmp_path):
    """hf_prune's own small CNN (the built-in image tasks' model, so the checkpoints of `hf-prune train --task
    digits`) loads from a saved folder: the scores equal those of the model object (`AutoConfig` did not know its
    model type)."""
    from hf_prune.tasks import load_digits_dataset, small_cnn

    torch.manual_seed(0)
    model = small_cnn(image_size=8, conv_channels=(4, 8), hidden_size=16)
    model.save_pretrained(str(tmp_path / "checkpoint-1"))
    rows = load_digits_dataset("train").select(range(40)).with_format("torch")
    by_path = HFPruner.from_checkpoints([str(tmp_path / "checkpoint-1")], rows, method="el2n",
                                        output_dir=tmp_path / "a").compute_score().values
    by_object = HFPruner.from_checkpoints([model], rows, method="el2n", output_dir=tmp_path / "b").compute_score().values
    assert by_path.shape == (40,) and np.isfinite(by_path).all()
    np.testing.assert_allclose(by_path, by_object, rtol=1e-6)


def test_the_card_of_a_checkpoint_result_names_its_checkpoints(tmp_path):
    """The dataset card says the scores come from forward passes of the checkpoints it names, not from a training
    run (it said "recorded during one ordinary `transformers.Trainer` run")."""
    from hf_prune import hub

    dataset, _, _ = vector_dataset(n=20, dim=DIM, num_classes=2, seed=8)
    pruner = HFPruner.from_checkpoints([checkpoint(60), checkpoint(61)], dataset, method="el2n",
                                       output_dir=tmp_path / "ckpt")
    pruner.save_to_disk(str(tmp_path / "pruned"), 0.5)
    card = (tmp_path / "pruned" / "README.md").read_text()
    assert "No training run was recorded: the scores come from forward passes of 2 saved checkpoint(s)" in card
    assert "ordinary `transformers.Trainer` run" not in card
    assert hub.provenance(pruner.result)["scoring_checkpoints"]["weights_from"] == "uniform"
