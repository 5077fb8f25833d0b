"""The bad-input matrix: every public entry point with wrong types, out-of-range values, degenerate datasets, broken
training and corrupted artefacts. Each case must raise a clear hf_prune error (naming the argument, the value and the
fix) — never a bare traceback from deep inside torch, mip or pyarrow, and never a silent wrong answer."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset

from hf_prune import HFPruner, PruneArguments, PruneResult, PruneTrainer, TrainingRecord
from hf_prune.errors import (
    DatasetError,
    HfPruneError,
    InvalidArgumentError,
    RecordError,
    ResultFormatError,
    SelectionError,
    TrainingDivergedError,
    UnknownPluginError,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_input")
    dataset, _, _ = vector_dataset(n=40)
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(out, num_train_epochs=3), train_dataset=dataset)
    trainer.train()
    return trainer, dataset


def train_on(dataset, tmp_path, **kw):
    trainer = PruneTrainer(model=IdentityHead(num_classes=kw.pop("classes", 3)), args=quiet_args(tmp_path, **kw),
                           train_dataset=dataset)
    trainer.train()
    return trainer


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"feature_dtype": "int8"}, r"`feature_dtype` must be one of \('float32', 'float16'\), got 'int8'"),
    ({"track_head_state": "sometimes"}, "`track_head_state` must be one of"),
    ({"score_epochs": 0}, "`score_epochs` must be a positive integer"),
    ({"score_epochs": 1.5}, "`score_epochs` must be a positive integer"),
    ({"record_flush_rows": 0}, "`record_flush_rows` must be a positive integer"),
    ({"score_epochs": 5, "num_train_epochs": 3}, r"`score_epochs=5` is more than the run's `num_train_epochs=3`"),
])
def test_prune_arguments(tmp_path, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        PruneArguments(output_dir=str(tmp_path), **kwargs)


# ---------------------------------------------------------------------- training sets
def _iterable():
    return vector_dataset()[0].to_iterable_dataset()


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: datasets.DatasetDict({"train": vector_dataset()[0]}), DatasetError, r"dataset\['train'\]"),
    (_iterable, DatasetError, "IterableDataset; pruning needs a map-style"),
    (lambda: [{"x": [0.0] * 5, "label": 0}], DatasetError, "must be a `datasets.Dataset`, got list"),
    (lambda: vector_dataset()[0].select([]), DatasetError, r"is empty \(0 rows\)"),
    (lambda: vector_dataset()[0].rename_column("label", "target"), DatasetError, "has no label column"),
    (lambda: datasets.Dataset.from_dict({"x": [[0.0] * 5], "label": ["cat"]}), DatasetError, "class_encode_column"),
    # float targets get the fix that applies to them, not the string-label one
    (lambda: datasets.Dataset.from_dict({"x": [[0.0] * 5], "label": [0.5]}), DatasetError,
     r"Float, list or multi-label targets .* are not supported"),
    (lambda: datasets.Dataset.from_dict({"x": [[0.0] * 5] * 2, "label": [None, 1]}), DatasetError, "missing"),
    (lambda: datasets.Dataset.from_dict({"x": [[0.0] * 5] * 2, "label": [-1, 1]}), DatasetError, "negative ids"),
])
def test_training_set(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=make())


def test_a_pruned_set_is_flagged_before_training_not_after(tmp_path, caplog):
    """Training `PruneTrainer` on the output of an earlier prune: a warning before any step names the columns that
    `prune()` will refuse and how to rename them (the refusal itself comes only after training)."""
    dataset = vector_dataset()[0]
    pruned = dataset.add_column("source_index", list(range(len(dataset)))).add_column("score_dual", [0.0] * len(dataset))
    with caplog.at_level("WARNING", logger="hf_prune"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=pruned)
    assert "['source_index', 'score_dual']" in caplog.text and "rename_column('source_index'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_prune"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    assert "earlier prune" not in caplog.text


def test_label_column_argument(tmp_path):
    with pytest.raises(DatasetError, match="`label_column='y'` is not a column"):
        PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path, label_column="y"),
                     train_dataset=vector_dataset()[0])


def test_labels_beyond_the_head(tmp_path):
    dataset = datasets.Dataset.from_dict({"x": [[0.0] * 5] * 4, "label": [0, 1, 2, 7]})
    with pytest.raises(HfPruneError, match=r"has label 7 \(column `label`\) but the head `classifier` has only 3 "
                                           r"outputs.*PruneArguments\(label_column=...\)"):
        train_on(dataset, tmp_path)


@pytest.mark.parametrize("names", [["a", "b", "c", "d", "e"], ["a", "b"]])
def test_class_label_names_that_are_not_the_heads_classes(tmp_path, names):
    """A `ClassLabel` listing more (or fewer) classes than the head has outputs is refused before any step, as
    `HFPruner.from_checkpoints` refuses it; the labels themselves fit the head."""
    features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32")),
                                  "label": datasets.ClassLabel(names=names)})
    dataset = datasets.Dataset.from_dict({"x": [[0.0] * 5] * 4, "label": [0, 1, 0, 1]}, features=features)
    with pytest.raises(HfPruneError, match=rf"`ClassLabel` with {len(names)} classes, but the head `classifier` has 3 "
                                           rf"outputs.*num_labels={len(names)}"):
        train_on(dataset, tmp_path)


def test_nan_loss_during_training_names_the_rows(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    x[5] = np.nan
    dataset = datasets.Dataset.from_dict({"x": x.tolist(), "label": [0, 1, 2, 0] * 4})
    with pytest.raises(TrainingDivergedError, match=r"non-finite losses \(source indices \[5\]"):
        train_on(dataset, tmp_path, per_device_train_batch_size=16)


def test_one_row_dataset(tmp_path, caplog):
    dataset = vector_dataset(n=3)[0].select([0])
    trainer = train_on(dataset, tmp_path, num_train_epochs=2)
    with caplog.at_level("WARNING", logger="hf_prune"):
        assert len(HFPruner(trainer, method="random", selector="random").prune(0.4)) == 1  # round(0.4) = 0 removed
    assert "removes round(0.4·1) = 0 of 1 rows: the subset is the whole training set (a 1-row set" in caplog.text
    with pytest.raises(InvalidArgumentError, match="leaves none"):
        HFPruner(trainer).prune(0.6)


def test_single_class_dataset(tmp_path):
    dataset = datasets.Dataset.from_dict({"x": np.random.default_rng(0).normal(size=(20, 5)).tolist(),
                                          "label": [0] * 20})
    trainer = train_on(dataset, tmp_path, classes=2)
    for method in ("el2n", "dual", "sgd_influence"):
        assert len(HFPruner(trainer, method=method).prune(0.5)) == 10


# ---------------------------------------------------------------------- pruner arguments
@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"method": "nope"}, UnknownPluginError, "Unknown score 'nope'. Known scores:"),
    ({"method": 3}, UnknownPluginError, "Unknown score 3"),
    ({"selector": "nope"}, UnknownPluginError, "Unknown selector 'nope'. Known selectors:"),
    ({"selector": "greedy"}, InvalidArgumentError, "scalar score"),
    ({"class_quota": "most"}, InvalidArgumentError, "`class_quota` must be 'none' or 'proportional'"),
    ({"min_per_class": -1}, InvalidArgumentError, "`min_per_class` must be a non-negative integer"),
    ({"seed": -1}, InvalidArgumentError, "`seed` must be a non-negative integer, got -1"),
    ({"seed": "zero"}, InvalidArgumentError, "`seed` must be a non-negative integer, got .zero."),
    ({"colour": "red"}, InvalidArgumentError, "Unknown option `colour`"),
    ({"method": "dual", "selector": "dual_beta", "c_d": "x"}, InvalidArgumentError, "`c_d` must be a positive"),
    ({"method": "sgd_influence", "sketch_size": 0}, InvalidArgumentError, "`sketch_size` must be a positive"),
    ({"method": "sgd_influence", "bucket_size": 1}, InvalidArgumentError, "`bucket_size` must be an integer"),
    ({"extrapolate": "svm"}, InvalidArgumentError, "`extrapolate` must be one of"),
])
def test_pruner_arguments(trained, kwargs, error, message):
    with pytest.raises(error, match=message):
        HFPruner(trained[0], **kwargs)


def test_c_d_needs_dual_beta(trained):
    # `c_d` belongs to dual_beta; with the default topk selector it is an unknown option.
    with pytest.raises(InvalidArgumentError, match="Unknown option `c_d`"):
        HFPruner(trained[0], method="dual", c_d=4)


@pytest.mark.parametrize(("ratio", "message"), [
    (0.0, r"must be in \(0, 1\)"), (1.0, r"must be in \(0, 1\)"), (-2, r"must be in \(0, 1\)"),
    (float("inf"), r"must be in \(0, 1\)"), ("half", "a float in"), (None, "`ratio` is required"),
])
def test_prune_ratio(trained, ratio, message):
    with pytest.raises(InvalidArgumentError, match=message):
        HFPruner(trained[0]).prune(ratio)


@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), "big"])
def test_epsilon_values(trained, epsilon):
    with pytest.raises(InvalidArgumentError, match="`epsilon` must be a positive number"):
        HFPruner(trained[0], method="sgd_influence").prune(epsilon=epsilon)


def test_epsilon_with_scalar_selector(trained):
    with pytest.raises(InvalidArgumentError, match="needs a vector selector"):
        HFPruner(trained[0]).prune(epsilon=1.0)


def test_floors_that_exceed_the_budget(trained):
    with pytest.raises(SelectionError, match="`min_per_class=10` over 3 classes needs 30 rows, more than the 4 kept"):
        HFPruner(trained[0], min_per_class=10).prune(0.9)


def test_floors_on_a_band_selector(trained):
    with pytest.raises(InvalidArgumentError, match="does not support `min_per_class`"):
        HFPruner(trained[0], method="aum", selector="ccs", min_per_class=1).prune(0.5)


# ---------------------------------------------------------------------- records and artefacts
def test_record_mismatch_after_scoring(trained):
    trainer, dataset = trained
    with pytest.raises(RecordError, match="training set of 40 rows, but the dataset given has 39"):
        HFPruner(record=trainer.record_dir, dataset=dataset.select(range(39))).prune(0.5)
    shuffled = dataset.shuffle(seed=1)
    with pytest.raises(RecordError, match="labels differ"):
        HFPruner(record=trainer.record_dir, dataset=shuffled).prune(0.5)


def test_truncated_and_corrupted_record(tmp_path):
    dataset, _, _ = vector_dataset(n=20)
    trainer = train_on(dataset, tmp_path)
    directory = trainer.record.path / trainer.record.meta["table"]["directory"]
    column = directory / "occ_logits.bin"
    column.write_bytes(column.read_bytes()[:100])
    with pytest.raises(RecordError, match="is truncated"):
        _ = TrainingRecord(trainer.record_dir).occurrences
    (trainer.record.path / "record.json").write_text("{broken")
    with pytest.raises(RecordError, match="is corrupted"):
        TrainingRecord(trainer.record_dir)


def test_incomplete_record(tmp_path):
    dataset, _, _ = vector_dataset(n=20)
    trainer = train_on(dataset, tmp_path)
    meta_path = trainer.record.path / "record.json"
    meta = json.loads(meta_path.read_text())
    meta["status"] = "running"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RecordError, match="is incomplete .*resume_from_checkpoint=True"):
        TrainingRecord(trainer.record_dir)


def test_saved_result_problems(trained, tmp_path):
    trainer, dataset = trained
    path = tmp_path / "saved"
    HFPruner(trainer).save(str(path))
    with pytest.raises(DatasetError, match="This result selects from 40 rows but the dataset has 39"):
        HFPruner.load(str(path), dataset=dataset.select(range(39)))
    (path / "arrays" / "labels.npy").unlink()
    with pytest.raises(ResultFormatError, match="missing, truncated or corrupted"):
        PruneResult.load(str(path))
    (tmp_path / "not-a-result").mkdir()
    (tmp_path / "not-a-result" / "data.txt").write_text("x")
    with pytest.raises(ResultFormatError, match="is not a saved hf_prune result"):
        HFPruner(trainer).result or HFPruner(trainer).select(0.5).save(str(tmp_path / "not-a-result"))


def test_unknown_optimizer_for_influence(tmp_path):
    trainer = train_on(vector_dataset(n=20)[0], tmp_path, optim="rmsprop")
    with pytest.raises(HfPruneError, match="no exact linearisation of optimizer 'RMSprop'"):
        HFPruner(trainer, method="sgd_influence").prune(0.5)
    assert len(HFPruner(trainer, method="dual").prune(0.5)) == 10  # dynamics scores still work


def test_the_mixin_listed_after_a_trainer_class_is_refused_at_class_definition():
    """`class X(MyTrainer, PruneTrainerMixin)` puts the Trainer's hooks first: none of the mixin's runs and the run
    trains without recording (then `HFPruner` said the trainer had no `train_dataset`). Refused when the class is
    defined; the documented spellings work."""
    from transformers import Trainer

    from hf_prune.trainer import PruneTrainerMixin, make_prune_trainer

    class MyTrainer(Trainer):
        pass

    with pytest.raises(TypeError, match=r"`Wrong` lists a Trainer class before `PruneTrainerMixin`.*"
                                        r"class Wrong\(PruneTrainerMixin, YourTrainer\)"):
        class Wrong(MyTrainer, PruneTrainerMixin):
            pass

    class Right(PruneTrainerMixin, MyTrainer):
        pass

    class Further(PruneTrainer):
        pass

    assert all(issubclass(k, PruneTrainerMixin) for k in (make_prune_trainer(MyTrainer), Right, Further))
