"""'Score i belongs to row i': the record ties every value to the right source row under every data pipeline."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, PixelHead, TokenStatsHead, quiet_args, vector_dataset
from transformers import DataCollatorWithPadding, default_data_collator

from hf_prune import PruneTrainer, TrainingRecord
from hf_prune.tracking.indexing import INDEX_COLUMN


def assert_rows_belong(record: TrainingRecord, expected_features: np.ndarray, labels: np.ndarray, epochs: int):
    occ = record.occurrences
    index = np.asarray(occ["index"])
    np.testing.assert_array_equal(np.asarray(occ["label"]), labels[index])
    np.testing.assert_allclose(np.asarray(occ["features"]), expected_features[index], rtol=0, atol=1e-6)
    n = len(labels)
    for epoch in range(epochs):
        seen = index[np.asarray(occ["epoch"]) == epoch]
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    steps = np.asarray(occ["step"])
    weights = np.asarray(occ["weight"], dtype=np.float64)
    per_step = np.bincount(steps, weights=weights)
    # Each optimizer step minimises the mean loss of its samples: the recorded weights of a step sum to one.
    np.testing.assert_allclose(per_step[np.unique(steps)], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(record.labels), labels)


def train(model, dataset, tmp_path, **overrides):
    collator = overrides.pop("data_collator", None)
    torch.manual_seed(0)
    trainer = PruneTrainer(model=model, args=quiet_args(tmp_path, **overrides), train_dataset=dataset, data_collator=collator)
    trainer.train()
    return trainer, trainer.record


@pytest.mark.parametrize("remove_unused_columns", [True, False])
def test_index_survives_column_removal(tmp_path, remove_unused_columns):
    dataset, x, y = vector_dataset(extra_text=True)
    collator = default_data_collator
    if not remove_unused_columns:
        # The string column reaches the collator; a collator that only keeps what the model needs must still work.
        def collator(features):
            return {
                "x": torch.tensor([f["x"] for f in features]),
                "labels": torch.tensor([f["label"] for f in features]),
            }

    _, record = train(
        IdentityHead(), dataset, tmp_path, remove_unused_columns=remove_unused_columns, data_collator=collator
    )
    assert_rows_belong(record, x, y, epochs=2)
    assert INDEX_COLUMN not in dataset.column_names


def test_caller_dataset_not_mutated(tmp_path):
    dataset, _x, _y = vector_dataset()
    fingerprint, columns = dataset._fingerprint, list(dataset.column_names)
    trainer, _ = train(IdentityHead(), dataset, tmp_path)
    assert dataset._fingerprint == fingerprint
    assert dataset.column_names == columns
    assert trainer.source_dataset is dataset


@pytest.mark.parametrize("use_with_transform", [True, False])
def test_index_survives_vision_transform(tmp_path, use_with_transform):
    rng = np.random.default_rng(1)
    pixels = rng.normal(size=(40, 2, 2)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    labels[:3] = [0, 1, 2]
    dataset = datasets.Dataset.from_dict({"image": pixels.tolist(), "label": labels.tolist()})

    def to_pixels(batch):
        # A typical HF vision transform: builds a new dict, which alone would drop the index column.
        return {"pixel_values": torch.tensor(batch["image"])[:, None], "labels": batch["label"]}

    if use_with_transform:
        transformed = dataset.with_transform(to_pixels)
    else:
        transformed = dataset.with_format(None)
        transformed.set_transform(to_pixels)
    _, record = train(PixelHead(), transformed, tmp_path, remove_unused_columns=False)
    assert_rows_belong(record, pixels.reshape(40, 4), labels, epochs=2)


def test_index_with_text_padding_and_group_by_length(tmp_path, minilm_tokenizer):
    texts = [("word " * (1 + (i * 7) % 13)) + f"number {i}" for i in range(40)]
    labels = np.array([i % 2 for i in range(40)])
    raw = datasets.Dataset.from_dict({"text": texts, "label": labels.tolist()})
    encoded = raw.map(lambda b: minilm_tokenizer(b["text"]), batched=True)
    expected = np.array(
        [[len(ids), sum(ids) / 1000.0, ids[1] / 1000.0] for ids in encoded["input_ids"]], dtype=np.float32
    )
    _, record = train(
        TokenStatsHead(),
        encoded,
        tmp_path,
        data_collator=DataCollatorWithPadding(minilm_tokenizer),
        train_sampling_strategy="group_by_length",
        per_device_train_batch_size=4,
    )
    assert_rows_belong(record, expected, labels, epochs=2)
    # group_by_length really reorders: consecutive rows of a step have similar lengths.
    steps = np.asarray(record.occurrences["step"])
    lengths = expected[np.asarray(record.occurrences["index"]), 0]
    within = np.mean([np.ptp(lengths[steps == s]) for s in np.unique(steps)])
    assert within < np.ptp(expected[:, 0]) / 2


def test_gradient_accumulation_and_ragged_last_batch(tmp_path):
    dataset, x, y = vector_dataset(n=45)
    _, record = train(IdentityHead(), dataset, tmp_path, gradient_accumulation_steps=3, per_device_train_batch_size=4)
    assert_rows_belong(record, x, y, epochs=2)
    steps = np.asarray(record.steps["rows"])
    # 45 rows in micro-batches of 4 -> 12 micro-batches per epoch -> 4 optimizer steps of 12 rows, the last has 9.
    np.testing.assert_array_equal(steps, [12, 12, 12, 9] * 2)
    micro = np.asarray(record.occurrences["microbatch"])[np.asarray(record.occurrences["step"]) == 0]
    np.testing.assert_array_equal(micro, np.repeat([0, 1, 2], 4))


def test_shuffle_follows_data_seed(tmp_path):
    dataset, _, _ = vector_dataset()
    orders = []
    for run, data_seed in enumerate([3, 3, 4]):
        _, record = train(IdentityHead(), dataset, tmp_path / str(run), data_seed=data_seed)
        orders.append(np.asarray(record.occurrences["index"]).copy())
    np.testing.assert_array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], orders[2])


def test_record_values_match_model(tmp_path, tiny_vectors):
    """Recorded logits are the model's outputs at the step (before the update), and the loss is their CE."""
    dataset, x, y = tiny_vectors
    trainer, record = train(IdentityHead(), dataset, tmp_path, num_train_epochs=1, learning_rate=0.0)
    occ = record.occurrences
    model = trainer.model.cpu()
    with torch.no_grad():
        logits = model(torch.tensor(x))["logits"].numpy()
    index = np.asarray(occ["index"])
    np.testing.assert_allclose(np.asarray(occ["logits"]), logits[index], atol=1e-5)
    expected_loss = torch.nn.functional.cross_entropy(torch.tensor(logits[index]), torch.tensor(y[index]), reduction="none")
    np.testing.assert_allclose(np.asarray(occ["loss"]), expected_loss.numpy(), atol=1e-5)
    probs = torch.softmax(torch.tensor(logits[index]), -1).numpy()
    residual = probs - np.eye(3)[y[index]]
    np.testing.assert_allclose(np.asarray(occ["logit_grad"]), residual / 8.0, atol=1e-6)  # mean over batch of 8


def test_learning_rate_and_epochs_recorded(tmp_path, tiny_vectors):
    dataset, _, _ = tiny_vectors
    _, record = train(IdentityHead(), dataset, tmp_path, num_train_epochs=3, lr_scheduler_type="linear")
    lr = np.asarray(record.steps["lr"])[:, 0]
    total = record.num_steps
    np.testing.assert_allclose(lr, 0.1 * (1 - np.arange(total) / total), rtol=1e-6)
    assert record.epochs_completed == 3
    np.testing.assert_array_equal(np.asarray(record.steps["epoch"]), np.repeat([0, 1, 2], 6))


def test_score_epochs_stops_early_keeping_schedule(tmp_path, tiny_vectors):
    dataset, _, _ = tiny_vectors
    _, record = train(IdentityHead(), dataset, tmp_path, num_train_epochs=4, score_epochs=2, lr_scheduler_type="linear")
    assert record.epochs_completed == 2
    lr = np.asarray(record.steps["lr"])[:, 0]
    # The schedule still spans 4 epochs (24 steps): after 12 steps the rate is half way down, not at zero.
    np.testing.assert_allclose(lr[-1], 0.1 * (1 - 11 / 24), rtol=1e-6)


def test_a_short_record_prunes_with_the_default_and_says_so(tmp_path, tiny_vectors):
    """`score_epochs=2` of 4: the default policy selects from the two recorded epochs, and the result, the log's
    quality summary and the card say the scores read a short record."""
    from hf_prune import HFPruner, hub
    from hf_prune.hub import quality_sentence

    dataset, _, _ = tiny_vectors
    trainer, _ = train(IdentityHead(), dataset, tmp_path, num_train_epochs=4, score_epochs=2)
    pruner = HFPruner(trainer)
    pruned = pruner.prune(0.5)
    result = pruner.result
    quality = result.info["run_quality"]
    assert (quality["short_record"], quality["recorded_epochs"], quality["planned_epochs"]) == (True, 2, 4.0)
    assert len(pruned) == result.num_kept == len(dataset) // 2
    assert "short record: 2 of the 4 planned epochs" in quality_sentence(result)
    # 2 epochs of 6 steps: too few to rank rows the way the whole run would, so the default draws at random.
    selection = result.info["selection"]
    assert (selection["trust_rule"], selection["trust"]) == ("short-record", 0.0)
    assert "12 optimizer steps" in selection["trust_reason"]
    assert "they were read from a scoring run stopped too early" in hub.self_check_sentence(result)
    full, _ = train(IdentityHead(), dataset, tmp_path / "full", num_train_epochs=2)
    assert HFPruner(full).select(0.5).info["run_quality"]["short_record"] is False


def test_the_planned_schedule_follows_max_steps_and_whole_epochs(tmp_path, tiny_vectors):
    """Transformers trains `max_steps` when it is set and ignores `num_train_epochs`: the planned epochs are then
    `max_steps` over one epoch's steps, so a whole run under `max_steps` is no short record (and one stopped by
    `score_epochs` still is); a trailing part-epoch (`num_train_epochs=2.5`) does not make a record short."""
    from hf_prune import HFPruner
    from hf_prune.tracking.quality import run_quality

    dataset, _, _ = tiny_vectors  # 48 rows, batch 8: 6 steps an epoch
    whole, _ = train(IdentityHead(), dataset, tmp_path / "a", num_train_epochs=40, max_steps=18)
    quality = run_quality(whole.record)
    assert (quality.recorded_epochs, quality.planned_epochs, quality.short_record) == (3, 3.0, False)
    longer, _ = train(IdentityHead(), dataset, tmp_path / "b", num_train_epochs=1, max_steps=24, score_epochs=2)
    quality = run_quality(longer.record)
    assert (quality.recorded_epochs, quality.planned_epochs, quality.short_record) == (2, 4.0, True)
    part, _ = train(IdentityHead(), dataset, tmp_path / "c", num_train_epochs=2.5)
    quality = run_quality(part.record)
    assert (quality.recorded_epochs, quality.planned_epochs, quality.short_record) == (2, 2.5, False)
    assert HFPruner(part).select(0.5).info["selection"]["trust_rule"] != "short-record"


def test_drop_last_is_named_before_training_and_in_the_error(tmp_path, tiny_vectors, caplog):
    """`dataloader_drop_last=True` leaves other rows out of every epoch: the trainer warns before training, a score
    that needs every row of its epochs refuses the record naming `dataloader_drop_last`, and `el2n` still works."""
    from hf_prune import HFPruner
    from hf_prune.errors import ScoreNotComputableError

    dataset, _, _ = tiny_vectors  # 48 rows, batch 10: 8 rows left out of every epoch
    with caplog.at_level("WARNING", logger="hf_prune"):
        trainer, _ = train(IdentityHead(), dataset, tmp_path, num_train_epochs=6, per_device_train_batch_size=10,
                           dataloader_drop_last=True)
    assert "`dataloader_drop_last=True` leaves 8 rows out of every epoch" in caplog.text
    assert trainer.record.meta["training"]["dataloader_drop_last"] is True
    with pytest.raises(ScoreNotComputableError, match=r"not finite .*`dataloader_drop_last=False`, or pick"):
        HFPruner(trainer, method="entropy").prune(0.5)
    assert len(HFPruner(trainer, method="el2n").prune(0.5)) == 24


def test_a_label_column_of_another_name_reaches_the_record(tmp_path, tiny_vectors):
    """`label_column="target"` alone: a model whose `forward` takes `target` is recorded with those labels; a model
    that does not take it never sees the column, and the error says how to fix that."""
    from hf_prune import HFPruner
    from hf_prune.errors import UnsupportedModelError

    class TargetHead(IdentityHead):
        def forward(self, x, target=None):
            return super().forward(x, labels=target)

    dataset, _, y = tiny_vectors
    renamed = dataset.rename_column("label", "target")
    trainer, _ = train(TargetHead(), renamed, tmp_path / "a", label_column="target", num_train_epochs=3)
    np.testing.assert_array_equal(trainer.record.labels, y)
    assert len(HFPruner(trainer, method="el2n").prune(0.5)) == len(y) // 2
    with pytest.raises(UnsupportedModelError, match=r"`target` is not in the training batch .*rename_column"):
        train(IdentityHead(), renamed, tmp_path / "b", label_column="target")


def test_eval_set_is_captured_as_query(tmp_path, tiny_vectors):
    dataset, _, _ = tiny_vectors
    eval_ds, ex, ey = vector_dataset(n=20, seed=5)
    torch.manual_seed(0)
    trainer = PruneTrainer(
        model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset, eval_dataset=eval_ds
    )
    trainer.train()
    query = trainer.record.auxiliary("query")
    np.testing.assert_allclose(query["features"], ex, atol=1e-6)
    np.testing.assert_array_equal(query["labels"], ey)
    with torch.no_grad():
        logits = trainer.model.cpu()(torch.tensor(ex))["logits"].numpy()
    np.testing.assert_allclose(query["logits"], logits, atol=1e-5)


def test_clipping_coefficient_recorded(tmp_path, tiny_vectors):
    dataset, _, _ = tiny_vectors
    _, record = train(IdentityHead(), dataset, tmp_path, max_grad_norm=1e-3)
    clip = np.asarray(record.steps["clip"])
    assert (clip < 1.0).all() and (clip > 0).all()


def test_shuffled_and_filtered_training_set(tmp_path):
    """An indices mapping (shuffle/select/filter) on the caller's dataset: row i is the i-th row *as the caller sees
    it*, with its own label."""
    base, x, y = vector_dataset(n=60)
    order = np.random.default_rng(3).permutation(60)[:45]
    dataset = base.select(order)
    _, record = train(IdentityHead(), dataset, tmp_path)
    assert_rows_belong(record, x[order], y[order], epochs=2)


def test_make_prune_trainer_on_another_trainer_class(tmp_path):
    from transformers import Trainer

    from hf_prune import make_prune_trainer

    class CustomTrainer(Trainer):
        """A user's Trainer subclass with its own hook."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self.calls = getattr(self, "calls", 0) + 1
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    Recording = make_prune_trainer(CustomTrainer)
    assert issubclass(Recording, CustomTrainer) and make_prune_trainer(Recording) is Recording
    dataset, x, y = vector_dataset()
    torch.manual_seed(0)
    trainer = Recording(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    trainer.train()
    assert trainer.calls == 12
    assert_rows_belong(trainer.record, x, y, epochs=2)
    with pytest.raises(TypeError, match="must be a subclass of transformers.Trainer"):
        make_prune_trainer(dict)
