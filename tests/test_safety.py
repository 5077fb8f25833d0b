"""Nothing of the user's is written, pushed or re-trained unasked; runs that cannot be pruned are refused."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset
from transformers import Trainer, TrainingArguments

from hf_prune import HFPruner, PruneTrainer, hub
from hf_prune.errors import RecordError, ScoreNotComputableError, UnsupportedModelError
from hf_prune.tracking.quality import run_quality


def tree_bytes(root: Path) -> dict[str, str]:
    """Every file under `root` with the hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_trained_plain_trainer_files_are_untouched(tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_PRUNE_CACHE", str(cache))
    user_dir = tmp_path / "user_run"
    dataset, _, _ = vector_dataset(n=30)
    torch.manual_seed(0)
    model = IdentityHead()
    plain = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(user_dir), num_train_epochs=2, per_device_train_batch_size=8,
                               learning_rate=0.1, report_to=[], save_strategy="epoch", logging_strategy="no",
                               use_cpu=True, disable_tqdm=True, seed=0),
        train_dataset=dataset,
    )
    plain.train()  # the user's own run: checkpoints in user_dir
    before = tree_bytes(user_dir)
    assert any(name.startswith("checkpoint-") and name.endswith("model.safetensors") for name in before)
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    pruner = HFPruner(plain)
    args = pruner.trainer.args
    assert Path(args.output_dir).parent == cache / "runs" and Path(args.output_dir) != user_dir
    assert args.save_strategy == "no" and args.push_to_hub is False and args.hub_model_id is None
    assert args.report_to in ([], ["none"], "none")
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        pruned = pruner.prune(0.5)
    assert len(pruned) == 15
    # The log says it trains the copy (it said "the trainer has not trained yet" of a trainer that had).
    assert "training the copy of the plain Trainer's run now" in caplog.text and "not trained yet" not in caplog.text

    assert tree_bytes(user_dir) == before  # same files, same bytes: nothing added, removed or rewritten
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[key])
    assert Path(pruner.record.path).is_relative_to(cache)


def test_trained_prune_trainer_with_a_missing_record_is_not_retrained(tmp_path):
    dataset, _, _ = vector_dataset(n=30)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    trainer.train()
    steps = trainer.state.global_step
    shutil.rmtree(trainer.record_dir)
    with pytest.raises(RecordError, match=r"No training record at .* does not re-train on its own: .*trainer\.train\(\)"):
        HFPruner(trainer).prune(0.5)
    assert trainer.state.global_step == steps and not os.path.exists(trainer.record_dir)


def test_corrupt_record_of_a_fresh_trainer_is_an_error_not_a_retrain(tmp_path):
    dataset, _, _ = vector_dataset(n=30)
    first = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    first.train()
    meta = Path(first.record_dir) / "record.json"
    meta.write_text("{not json")
    again = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=dataset)
    with pytest.raises(RecordError, match=r"corrupted .* does not re-train on its own"):
        HFPruner(again).prune(0.5)
    assert again.state.global_step == 0 and meta.read_text() == "{not json"


def test_record_of_another_dataset_is_an_error_not_a_retrain(tmp_path):
    first = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=vector_dataset(n=30)[0])
    first.train()
    other = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path), train_dataset=vector_dataset(n=30, seed=5)[0])
    with pytest.raises(RecordError, match="labels differ"):
        HFPruner(other).prune(0.5)
    assert other.state.global_step == 0


def learnable_dataset(n: int = 60, seed: int = 0) -> datasets.Dataset:
    """Rows whose class is the largest of their first three coordinates: a linear head learns it in a few epochs."""
    x = np.random.default_rng(seed).normal(size=(n, 5)).astype(np.float32)
    return datasets.Dataset.from_dict({"x": x.tolist(), "label": x[:, :3].argmax(axis=1).tolist()},
                                      features=vector_dataset(n=3)[0].features)


@pytest.mark.chance_check
def test_a_learning_run_is_not_refused(tmp_path):
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path, num_train_epochs=4, learning_rate=0.5),
                           train_dataset=learnable_dataset())
    trainer.train()
    quality = run_quality(trainer.record)
    assert quality.explained > 0.3 and not quality.at_chance
    assert len(HFPruner(trainer).prune(0.5)) == 30


@pytest.mark.chance_check
def test_a_run_at_chance_level_is_refused(tmp_path):
    dataset, _, _ = vector_dataset(n=60)
    torch.manual_seed(0)
    model = IdentityHead()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    trainer = PruneTrainer(model=model, args=quiet_args(tmp_path, learning_rate=1e-6), train_dataset=dataset)
    trainer.train()
    quality = run_quality(trainer.record)
    labels = np.asarray(dataset["label"])
    shares = np.bincount(labels) / len(labels)
    assert quality.label_entropy == pytest.approx(-(shares * np.log(shares)).sum())
    assert quality.train_loss == pytest.approx(np.log(3), abs=1e-3)  # zero weights: uniform predictions
    assert quality.at_chance
    for method in ("dual", "el2n", "sgd_influence"):
        with pytest.raises(ScoreNotComputableError, match=r"near chance level .*`learning_rate`"):
            HFPruner(trainer, method=method).prune(0.5)
    assert len(HFPruner(trainer, method="random", selector="random").prune(0.5)) == 30  # drawing needs no scores


def test_run_quality_matches_the_record_by_hand(tmp_path):
    dataset, _, _ = vector_dataset(n=40)
    evalset = vector_dataset(n=12, seed=3)[0]
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path, num_train_epochs=3), train_dataset=dataset,
                           eval_dataset=evalset)
    trainer.train()
    record = trainer.record
    quality = run_quality(record)
    occ = record.occurrences
    last = np.asarray(occ["epoch"]) == 2
    logits, label = np.asarray(occ["logits"])[last].astype(np.float64), np.asarray(occ["label"])[last]
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    assert quality.epoch == 2
    assert quality.train_loss == pytest.approx(-log_probs[np.arange(len(label)), label].mean(), rel=1e-5)
    assert quality.train_accuracy == pytest.approx((logits.argmax(1) == label).mean())
    with torch.no_grad():
        eval_logits = trainer.model(torch.tensor(np.asarray(evalset["x"], dtype=np.float32)))["logits"].numpy()
    assert quality.eval_accuracy == pytest.approx((eval_logits.argmax(1) == np.asarray(evalset["label"])).mean())
    assert quality.eval_rows == 12


def test_regression_head_is_refused(tmp_path):
    from hf_prune.tasks import small_cnn

    dataset = datasets.Dataset.from_dict({"pixel_values": np.zeros((4, 1, 8, 8), dtype=np.float32).tolist(),
                                          "label": [0, 1, 0, 1]})
    with pytest.raises(UnsupportedModelError, match=r"has 1 output: transformers treats `num_labels=1` as regression"):
        PruneTrainer(model=small_cnn(num_labels=1, image_size=8), args=quiet_args(tmp_path), train_dataset=dataset)
    trainer = PruneTrainer(model_init=lambda: small_cnn(num_labels=1, image_size=8), args=quiet_args(tmp_path),
                           train_dataset=dataset.with_format("torch"))
    with pytest.raises(UnsupportedModelError, match=r"num_labels=<number of classes>"):
        trainer.train()


def test_one_epoch_run_prunes_with_the_default(tmp_path, caplog):
    dataset, _, _ = vector_dataset(n=40)
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path, num_train_epochs=1), train_dataset=dataset)
    trainer.train()
    pruner = HFPruner(trainer)
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        pruned = pruner.prune(0.5)
    assert len(pruned) == 20
    # One scored epoch: the reliability self-check cannot run, so the scores are not followed: every class keeps
    # its proportional share, drawn uniformly, and the result, the log and the card say so.
    result = pruner.result
    assert result.info["selection"]["trust"] == 0.0
    assert "reliability not measurable" in result.info["selection"]["trust_reason"]
    assert "does not follow them" in caplog.text and "score_epochs=2" in caplog.text
    labels = np.asarray(dataset["label"])
    kept_per_class = np.bincount(labels[result.kept], minlength=labels.max() + 1)
    share = 20 * np.bincount(labels) / len(labels)
    assert np.all(np.abs(kept_per_class - share) < 1.0), (kept_per_class, share)
    sentence = hub.self_check_sentence(result)
    assert ("the scores were not followed (their reliability could not be measured; class-stratified uniform "
            "sampling)") in sentence
    assert "reliability not measurable (each row was scored once" in sentence
    caplog.clear()
    two = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "two", num_train_epochs=2),
                       train_dataset=dataset)
    two.train()
    with caplog.at_level(logging.WARNING, logger="hf_prune"):
        HFPruner(two).prune(0.5)
    assert "does not follow them" not in caplog.text  # two epochs: the reliability is measured
    # DUAL on one epoch, by hand: (1 − p) · sqrt(p (1 − p)) with p the true-class probability of the one presentation.
    occ = trainer.record.occurrences
    logits, label, index = (np.asarray(occ["logits"], dtype=np.float64), np.asarray(occ["label"]),
                            np.asarray(occ["index"]))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    p = np.empty(40)
    p[index] = probs[np.arange(len(label)), label]
    np.testing.assert_allclose(pruner.compute_score().values, (1 - p) * np.sqrt(p * (1 - p)), rtol=1e-6)
    assert pruner.compute_score().info["window"] == 1
    with pytest.raises(ScoreNotComputableError, match=r"Train for at least 2 epochs, or use a score that reads one"):
        HFPruner(trainer, method="dyn_unc").prune(0.5)


def test_saved_results_and_local_copies_carry_the_card(tmp_path):
    dataset, _, _ = vector_dataset(n=30, extra_text=True)
    evalset = vector_dataset(n=9, seed=4)[0]
    torch.manual_seed(0)
    tokenized = dataset.remove_columns("note")  # what the model trains on; `dataset` is the raw source
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run", num_train_epochs=3),
                           train_dataset=tokenized, eval_dataset=evalset)
    trainer.train()
    pruner = HFPruner(trainer)
    pruner.prune(0.5)
    saved = pruner.save(str(tmp_path / "result"))
    local = pruner.save_to_disk(str(tmp_path / "pruned"), dataset=dataset)
    quality = pruner.run_quality
    for directory in (saved, local):
        card = (Path(directory) / "README.md").read_text()
        assert "https://pypi.org/project/hf-prune/" in card and "https://github.com/)" not in card
        assert f"training loss {quality.train_loss:.4f}" in card
        assert f"{quality.eval_accuracy:.4f} accuracy on 9 held-out rows" in card
        assert "keeps **15 of 30** rows" in card
    reloaded = datasets.load_from_disk(local)
    assert reloaded.column_names == ["x", "label", "note", "source_index", "score_dual"]
    assert reloaded["note"] == [f"row {i}" for i in reloaded["source_index"]]  # raw rows, aligned by source index
    yaml_block = (Path(local) / "README.md").read_text().split("---")[1]
    assert "scoring_run" in yaml_block and "train_loss" in yaml_block
    info = json.loads((Path(saved) / "result.json").read_text())["info"]
    assert info["run_quality"]["train_loss"] == pytest.approx(quality.train_loss, rel=1e-5)


def test_record_dir_on_a_folder_of_the_users_is_refused_not_deleted(tmp_path):
    # `record_dir` pointing at a folder that holds no record: training would have deleted it (rmtree) to start a
    # record there. It is refused and every file stays; a folder that holds a record is replaced as before.
    dataset, _, _ = vector_dataset(n=30)
    folder = tmp_path / "my_project"
    (folder / "data").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "data" / "train.csv").write_text("a,b")
    before = tree_bytes(folder)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run", record_dir=str(folder)),
                           train_dataset=dataset)
    with pytest.raises(RecordError, match="holds no hf_prune record .* Point `record_dir` at a new or empty folder"):
        trainer.train()
    assert tree_bytes(folder) == before
    record_dir = tmp_path / "run2" / "prune_record"
    for _ in range(2):  # the second run replaces the first run's record
        again = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run2"), train_dataset=dataset)
        again.train()
        assert again.record.num_samples == 30 and record_dir.is_dir()


def test_a_trainer_does_not_read_a_later_runs_record(tmp_path):
    # Two trainers, one output_dir: B's run replaces A's record. A then refuses B's record instead of pruning with it
    # (it selected B's rows); B reads its own.
    dataset, _, _ = vector_dataset(n=30)
    first = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run"), train_dataset=dataset)
    first.train()
    assert first.record.meta["run_id"] == first._prune_session.run_id
    HFPruner(first).select(0.5)
    second = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run", learning_rate=0.05, seed=3),
                          train_dataset=dataset)
    second.train()
    with pytest.raises(RecordError, match="not the one this trainer's run wrote: another run has since written"):
        HFPruner(first).select(0.5)
    assert len(HFPruner(second).select(0.5).kept) == 15


def test_a_rebuilt_trainer_with_a_fresh_model_is_not_taken_for_the_final_model(tmp_path, caplog):
    # A trainer rebuilt over an existing record (say after a restart) holds an untrained model: a "final-model" pass
    # with it was made, used and stored for later calls. The record knows its final head, so the pass is not made
    # with another model; the same trainer with the trained weights loaded makes it.
    from hf_prune.scores.influence import final_head_values

    dataset, _, _ = vector_dataset(n=30)
    torch.manual_seed(0)
    trained = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run", num_train_epochs=3),
                           train_dataset=dataset)
    trained.train()
    rebuilt = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run", num_train_epochs=3),
                           train_dataset=dataset)
    with caplog.at_level("WARNING", logger="hf_prune"):
        values, source = final_head_values(rebuilt.record, rebuilt)
    assert source == "last_epoch_training_forward" and "is not the one its run ended with" in caplog.text
    assert rebuilt.record.auxiliary("final") is None  # nothing made with the wrong model was stored
    rebuilt.model.load_state_dict(trained.model.state_dict())
    values, source = final_head_values(rebuilt.record, rebuilt)
    assert source == "final_model_pass"
    np.testing.assert_allclose(values["logits"], final_head_values(trained.record, trained)[0]["logits"], rtol=1e-6)
