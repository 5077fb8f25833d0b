"""HFPruner end to end: output contract, trainer kinds, and clear errors for bad input."""

from __future__ import annotations

import re

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset
from transformers import Trainer, TrainingArguments

from hf_prune import HFPruner, PruneTrainer
from hf_prune.errors import DatasetError, InvalidArgumentError, RecordError, UnknownPluginError


@pytest.fixture
def trained(tmp_path):
    dataset, x, y = vector_dataset(n=50)
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    trainer.train()
    return trainer, dataset, x, y


def test_prune_output_contract(trained):
    trainer, dataset, x, y = trained
    fingerprint = dataset._fingerprint
    pruned = HFPruner(trainer).prune(0.4)  # the library default: dual scores, systematic dual_beta selection
    assert len(pruned) == 50 - round(0.4 * 50) == 30
    assert pruned.column_names == ["x", "label", "source_index", "score_dual"]
    assert pruned.features["label"] == dataset.features["label"]
    assert pruned.features["x"] == dataset.features["x"]
    assert pruned.features["source_index"] == datasets.Value("int64")
    assert pruned.features["score_dual"] == datasets.Value("float32")
    source = np.asarray(pruned["source_index"])
    assert (np.diff(source) > 0).all()  # original order
    np.testing.assert_allclose(np.asarray(pruned["x"]), x[source])
    np.testing.assert_array_equal(np.asarray(pruned["label"]), y[source])
    assert dataset._fingerprint == fingerprint and len(dataset) == 50


def test_prune_keeps_highest_el2n(trained):
    trainer, _, _, _ = trained
    pruner = HFPruner(trainer, method="el2n")
    pruned = pruner.prune(0.5)
    table = pruner.scores()
    assert len(table) == 50 and table.column_names == ["source_index", "label", "score_el2n"]
    scores = np.asarray(table["score_el2n"])
    kept = np.asarray(pruned["source_index"])
    removed = np.setdiff1d(np.arange(50), kept)
    assert scores[kept].min() >= scores[removed].max()
    # EL2N by hand from the record: mean over the first half of the epochs (1 of 2) of ||softmax - onehot||.
    record = trainer.record
    occ = record.occurrences
    first_epoch = np.asarray(occ["epoch"]) == 0
    logits = np.asarray(occ["logits"])[first_epoch]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = np.asarray(occ["label"])[first_epoch]
    el2n = np.linalg.norm(probs - np.eye(3)[labels], axis=1)
    expected = np.empty(50)
    expected[np.asarray(occ["index"])[first_epoch]] = el2n
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


@pytest.mark.parametrize("ratio", [0.02, 0.3, 0.5, 0.98])
def test_exact_budget(trained, ratio):
    trainer, _, _, _ = trained
    pruned = HFPruner(trainer, method="random", selector="random", allow_empty_classes=True).prune(ratio)
    assert len(pruned) == 50 - int(np.floor(ratio * 50 + 0.5))


def test_untrained_prune_trainer_is_trained_first(tmp_path):
    dataset, _, _ = vector_dataset(n=30)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    assert not trainer.has_record()
    pruned = HFPruner(trainer).prune(0.5)
    assert len(pruned) == 15
    assert trainer.state.global_step > 0 and trainer.has_record()


def test_plain_trainer_is_converted_and_left_untouched(tmp_path):
    dataset, _, _ = vector_dataset(n=30)
    torch.manual_seed(0)
    model = IdentityHead()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=8,
                               learning_rate=0.1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True),
        train_dataset=dataset,
    )
    pruner = HFPruner(plain)
    assert isinstance(pruner.trainer, PruneTrainer) and pruner.trainer.model is not model
    pruned = pruner.prune(0.5)
    assert len(pruned) == 15
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert plain.state.global_step == 0


def test_prune_from_saved_record(trained):
    trainer, dataset, _, _ = trained
    direct = HFPruner(trainer).prune(0.4)
    again = HFPruner(record=trainer.record_dir, dataset=dataset).prune(0.4)
    assert direct["source_index"] == again["source_index"]


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1, float("nan")])
def test_ratio_out_of_range(trained, ratio):
    with pytest.raises(InvalidArgumentError, match=r"`ratio` is the fraction of rows to remove and must be in \(0, 1\)"):
        HFPruner(trained[0]).prune(ratio)


@pytest.mark.parametrize("ratio", ["0.5", True, None])
def test_ratio_wrong_type(trained, ratio):
    with pytest.raises(InvalidArgumentError, match="`ratio`"):
        HFPruner(trained[0]).prune(ratio)


def test_ratio_leaving_no_rows_or_removing_none(tmp_path, caplog):
    dataset, _, _ = vector_dataset(n=3)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    trainer.train()
    with pytest.raises(InvalidArgumentError, match=r"removes round\(0.9·3\) = 3 of 3 rows and leaves none"):
        HFPruner(trainer).prune(0.9)
    with caplog.at_level("WARNING", logger="hf_prune"):
        assert len(HFPruner(trainer).prune(0.1)) == 3
    assert re.search(r"removes round\(0.1·3\) = 0 of 3 rows: the subset is the whole training set \(`ratio=0.333` "
                     "removes one", caplog.text)
    assert len(HFPruner(trainer, allow_empty_classes=True).prune(0.333)) == 2  # the suggested ratio removes one row


def test_ratio_and_epsilon_together(trained):
    with pytest.raises(InvalidArgumentError, match="either `ratio`.*or `epsilon`"):
        HFPruner(trained[0]).prune(0.5, epsilon=1.0)


def test_dataset_dict_is_diagnosed(tmp_path):
    dataset, _, _ = vector_dataset()
    with pytest.raises(DatasetError, match=r"Did you mean `train_dataset=dataset\['train'\]`"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path),
                     train_dataset=datasets.DatasetDict({"train": dataset, "test": dataset}))


def test_missing_label_column(tmp_path):
    dataset = datasets.Dataset.from_dict({"x": [[0.0] * 5] * 4, "target": [0, 1, 0, 1]})
    with pytest.raises(DatasetError, match="has no label column.*Name it `label`"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)


def test_empty_dataset(tmp_path):
    dataset = vector_dataset()[0].select([])
    with pytest.raises(DatasetError, match="is empty"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)


@pytest.mark.parametrize(("labels", "message"), [([0, None, 1], "missing \\(None\\)"), ([0, -1, 1], "negative ids")])
def test_unlabeled_rows(tmp_path, labels, message):
    dataset = datasets.Dataset.from_dict(
        {"x": [[0.0] * 5] * 3, "label": labels}, features=datasets.Features(
            {"x": datasets.Sequence(datasets.Value("float32")), "label": datasets.Value("int64")})
    )
    with pytest.raises(DatasetError, match=message):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)


def test_string_labels_are_refused(tmp_path):
    dataset = datasets.Dataset.from_dict({"x": [[0.0] * 5] * 2, "label": ["a", "b"]})
    with pytest.raises(DatasetError, match="class_encode_column"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)


def test_record_of_another_dataset(trained):
    trainer, dataset, _, _ = trained
    shorter = dataset.select(range(40))
    with pytest.raises(RecordError, match="training set of 50 rows, but the dataset given has 40"):
        HFPruner(record=trainer.record_dir, dataset=shorter).prune(0.5)
    relabeled = dataset.map(lambda row: {"label": (row["label"] + 1) % 3})
    with pytest.raises(RecordError, match="labels differ"):
        HFPruner(record=trainer.record_dir, dataset=relabeled).prune(0.5)


def test_missing_record(tmp_path):
    dataset, _, _ = vector_dataset()
    with pytest.raises(RecordError, match="No training record at"):
        HFPruner(record=str(tmp_path / "nothing"), dataset=dataset).prune(0.5)


def test_unknown_names_and_options(trained):
    trainer = trained[0]
    with pytest.raises(UnknownPluginError, match="Unknown score 'nope'. Known scores: .*el2n"):
        HFPruner(trainer, method="nope")
    with pytest.raises(UnknownPluginError, match="Unknown selector 'nope'. Known selectors: .*topk"):
        HFPruner(trainer, selector="nope")
    with pytest.raises(InvalidArgumentError, match="Unknown option `colour`"):
        HFPruner(trainer, colour="red")
    # The benchmark's historical `dual_beta` variants live in scripts/lab_selectors.py, not in the default's options.
    with pytest.raises(InvalidArgumentError, match="Unknown option `hard_side`: .*selector `dual_beta` accepts"):
        HFPruner(trainer, hard_side="flat")


def test_pruned_output_of_pruned_dataset_needs_rename(trained, tmp_path):
    trainer, _, _, _ = trained
    pruned = HFPruner(trainer).prune(0.2)
    second = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "second"), train_dataset=pruned)
    second.train()
    with pytest.raises(DatasetError, match="already has a `source_index` column"):
        HFPruner(second).prune(0.5)


def test_non_trainer_argument():
    with pytest.raises(InvalidArgumentError, match="`trainer` must be a transformers.Trainer"):
        HFPruner(object())


def test_default_method_and_selector(trained):
    pruner = HFPruner(trained[0])
    assert pruner.score.name == "dual" and pruner.selector.name == "dual_beta"
    assert pruner.selector.options()["sampling"] == "systematic"
    assert pruner.selector.options()["hard_cutoff"] == "regime"
    assert pruner.selector.options()["cutoff_scale"] == "ratio"
    assert pruner.selector.options()["inclusion"] == "successive"
    assert not {"hard_side", "hard_floor", "after_cutoff"} & set(pruner.selector.options())  # lab options only
    result = pruner.select(0.5)
    gap = pruner.compute_score().info["memorization_gap"]
    assert result.info["selection"]["memorization_gap"] == pytest.approx(gap, abs=0.05)
    assert result.info["selection"]["cutoff_applied"] == (result.info["selection"]["memorization_gap"] >= 0.15)
    # naming a method gives that method's own default selector (the paper's keep-top rule for dual)
    assert HFPruner(trained[0], method="dual").selector.name == "topk"


def test_from_result_selects_again_without_training(trained):
    trainer, dataset, _, _ = trained
    pruner = HFPruner(trainer, method="el2n")
    result = pruner.select(0.4)
    again = HFPruner.from_result(result, dataset=dataset)
    assert again.trainer is None and again.source_result is result and pruner.source_result is None
    np.testing.assert_array_equal(again.select(0.4).kept, result.kept)  # same score, same selector
    # Another ratio from the same saved scores: the highest EL2N rows, as a fresh pruner on the record selects them.
    np.testing.assert_array_equal(again.select(0.7).kept, pruner.select(0.7).kept)


def test_from_result_refuses_a_score_option_it_cannot_apply(trained):
    # The saved scores are read as they are: `epochs=1` would change the `dual` scores on the record, so asking a
    # saved result for it is refused (it was accepted, ignored, and then written into the result's options).
    trainer, dataset, _, _ = trained
    result = HFPruner(trainer, method="dual", selector="topk").select(0.4)
    assert not np.allclose(HFPruner(trainer, method="dual", epochs=1).compute_score().values,
                           HFPruner(trainer, method="dual").compute_score().values)
    with pytest.raises(InvalidArgumentError, match=r"`epochs=1` is an option of the score `dual`.*cannot compute"):
        HFPruner.from_result(result, dataset=dataset, epochs=1)
    again = HFPruner.from_result(result, dataset=dataset, epochs=None)  # the value the scores were computed with
    np.testing.assert_array_equal(again.select(0.4).kept, result.kept)


def test_saved_options_both_sides_accept_stay_apart(trained, tmp_path):
    # `solver` is an option of the influence-function score ("cholesky", ...) and of the `mip` selector ("cbc"): a
    # saved result must give each side its own value when it is loaded.
    trainer, dataset, _, _ = trained
    pruner = HFPruner(trainer, method="influence_function", selector="mip", sketch_size=None)
    pruner.save(str(tmp_path / "saved"), include_dataset=False)
    loaded = HFPruner.load(str(tmp_path / "saved"), dataset=dataset)
    assert loaded.score.options()["solver"] == pruner.score.options()["solver"] == "auto"
    assert loaded.selector.options()["solver"] == pruner.selector.options()["solver"] == "cbc"
    assert len(loaded.select(0.5).kept) == 25


def test_a_one_off_score_call_does_not_replace_the_pruners_own(trained):
    # `compute_score("dual", epochs=1)` on a pruner configured with the default `dual`: the one-off output was kept
    # under the name `dual` and the next selection used it.
    trainer, _, _, _ = trained
    reference = HFPruner(trainer, method="dual", selector="topk")
    pruner = HFPruner(trainer, method="dual", selector="topk")
    one_off = pruner.compute_score("dual", epochs=1)
    assert not np.allclose(one_off.values, reference.compute_score().values)
    np.testing.assert_array_equal(pruner.compute_score().values, reference.compute_score().values)
    np.testing.assert_array_equal(pruner.select(0.5).kept, reference.select(0.5).kept)
    assert pruner.result.info["score_info"]["dual"].get("epochs") == reference.result.info["score_info"]["dual"].get(
        "epochs")
    # Another score's output is kept with the options it was asked with, and asked again with others, recomputed.
    first = pruner.compute_score("el2n", epochs=1)
    assert pruner.compute_score("el2n", epochs=1) is first
    assert pruner.compute_score("el2n", epochs=2) is not first
