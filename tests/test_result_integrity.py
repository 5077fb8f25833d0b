"""Integrity of everything read back: dataset identity (labels and sampled column hashes), saved results that were
tampered with, and exact integer budgets."""

from __future__ import annotations

import io
import json
import math
from fractions import Fraction

import datasets
import numpy as np
import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset

from hf_prune import HFPruner, PruneTrainer
from hf_prune.errors import DatasetError, RecordError, ResultFormatError
from hf_prune.result import PruneResult, file_checksum
from hf_prune.selection.base import keep_count
from hf_prune.tracking.dataset import check_same_rows, column_hashes, dataset_signature, sample_positions


def learnable_dataset(n: int):
    """`vector_dataset` with labels the model can learn (the class of the largest of the first three features), so
    that the scoring run is not refused as chance level."""
    dataset, x, _ = vector_dataset(n=n)
    labels = np.argmax(x[:, :3], axis=1)
    return dataset.cast_column("label", datasets.Value("int64")).map(
        lambda row, index: {"label": int(labels[index])}, with_indices=True
    ).cast_column("label", datasets.ClassLabel(num_classes=3)), labels


def train(dataset, directory):
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(directory, num_train_epochs=4, learning_rate=0.5), train_dataset=dataset)
    trainer.train()
    return trainer


@pytest.fixture
def trained(tmp_path):
    dataset, labels = learnable_dataset(50)
    return train(dataset, tmp_path / "run"), dataset, labels


def swap_same_label(dataset, labels):
    """The dataset with two rows of the same class swapped: same labels, same length, other order."""
    first, second = np.flatnonzero(labels == labels[0])[:2]
    order = np.arange(len(dataset))
    order[[first, second]] = order[[second, first]]
    return dataset.select(order)


def single_class_dataset(n: int = 300):
    rng = np.random.default_rng(0)
    features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32")), "label": datasets.ClassLabel(2)})
    return datasets.Dataset.from_dict(
        {"x": rng.normal(size=(n, 3)).astype(np.float32).tolist(), "label": [0] * n}, features=features
    )


def hand_result(signature=None, **overrides) -> PruneResult:
    values = {
        "kept": np.array([0, 2, 3], dtype=np.int64),
        "labels": np.array([0, 1, 2, 0, 1], dtype=np.int64),
        "method": "dual",
        "selector": "topk",
        "ratio": 0.4,
        "scores": {"dual": np.array([0.5, -1.0, 2.0, 3.0, 0.0])},
        "vectors": np.arange(10, dtype=np.float32).reshape(5, 2),
        "aux": {"p_mean": np.linspace(0, 1, 5)},
        "class_names": ["a", "b", "c"],
        "record": {"dataset": signature} if signature else {},
    }
    values.update(overrides)
    return PruneResult(**values)


def five_rows():
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    return datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(5)], "label": [0, 1, 2, 0, 1]}, features)


# ---------------------------------------------------------------------- dataset identity
def test_sample_positions():
    assert sample_positions(5).tolist() == [0, 1, 2, 3, 4]
    positions = sample_positions(60_000)
    assert len(positions) == 256 and positions[0] == 0 and positions[-1] == 59_999
    assert (np.diff(positions) > 0).all()


def test_column_hashes_ignore_storage_and_format():
    dataset, _, _ = vector_dataset(n=300, extra_text=True)
    signature = dataset_signature(dataset, "label")
    assert set(signature["column_hashes"]) == {"x", "note"}  # every column but the label
    assert column_hashes(dataset.with_format("torch"), exclude=("label",)) == signature["column_hashes"]
    assert column_hashes(dataset.with_format("numpy"), exclude=("label",)) == signature["column_hashes"]
    widened = dataset.cast_column("x", datasets.Sequence(datasets.Value("float64")))  # same values, other storage
    assert column_hashes(widened, exclude=("label",)) == signature["column_hashes"]
    # An indices mapping is applied: selecting every row in order is the same dataset, reversed is not.
    assert column_hashes(dataset.select(range(300)), exclude=("label",)) == signature["column_hashes"]
    reversed_hashes = column_hashes(dataset.select(range(299, -1, -1)), exclude=("label",))
    assert reversed_hashes["x"] != signature["column_hashes"]["x"]
    assert reversed_hashes["note"] != signature["column_hashes"]["note"]


def test_image_columns_hash_their_bytes():
    from PIL import Image

    def png(value: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    images = [{"bytes": png(value), "path": f"/data/{value}.png"} for value in range(6)]
    dataset = datasets.Dataset.from_dict(
        {"image": images, "label": [0] * 6}, datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    )
    signature = dataset_signature(dataset, "label")
    check_same_rows(signature, dataset.with_format("torch"))
    with pytest.raises(DatasetError, match=r"Column\(s\) \['image'\]"):
        check_same_rows(signature, dataset.select([1, 0, 2, 3, 4, 5]))


def test_same_rows_in_another_form_pass():
    dataset, _, _ = vector_dataset(n=40, extra_text=True)
    signature = dataset_signature(dataset, "label")
    check_same_rows(signature, dataset)
    check_same_rows(signature, dataset.remove_columns("x"))  # a column dropped: compared on what is left
    check_same_rows(signature, dataset.add_column("raw", [f"raw {i}" for i in range(40)]))  # an extra raw column
    check_same_rows(signature, dataset.rename_column("x", "pixel_values"))


def test_source_with_the_label_renamed_is_matched_on_its_labels():
    # The usual tutorial step: the training set renamed `label` to `labels` and shares no other column with the raw
    # source. The source's `label` column is compared, so its shuffled copy is refused and the original passes.
    dataset, _, _ = vector_dataset(n=60, extra_text=True)
    training = dataset.remove_columns("note").rename_column("label", "labels")
    signature = dataset_signature(training, "labels")
    source = dataset.remove_columns("x")  # text and label: nothing in common with the training set but the labels
    check_same_rows(signature, source)
    shuffled = source.shuffle(seed=1)
    assert (np.asarray(shuffled["label"]) != np.asarray(source["label"])).any()
    with pytest.raises(DatasetError, match="labels differ .*label column `label`"):
        check_same_rows(signature, shuffled)
    # Neither labels nor a shared column: nothing could tell a shuffled copy apart, so it is refused with the fix.
    with pytest.raises(DatasetError, match="no label column .* Keep the label column"):
        check_same_rows(signature, source.remove_columns("label"))


def test_shuffled_single_class_is_caught_by_column_hashes():
    dataset = single_class_dataset()
    signature = dataset_signature(dataset, "label")
    with pytest.raises(DatasetError, match=r"Column\(s\) \['x'\] .*same labels.*original order, before any shuffle"):
        check_same_rows(signature, dataset.shuffle(seed=0), what="The record")
    with pytest.raises(RecordError, match=r"training set the record was made from"):
        check_same_rows(signature, dataset.shuffle(seed=0), what="The record", error=RecordError)
    with pytest.raises(DatasetError, match=r"Column\(s\) \['x'\]"):
        hand_result(signature, labels=np.zeros(300, dtype=np.int64), kept=np.arange(5)).check_dataset(
            dataset.shuffle(seed=1)
        )


def test_signature_edge_cases():
    dataset = single_class_dataset()
    signature = dataset_signature(dataset, "label")
    with pytest.raises(DatasetError, match="training set of 300 rows, but the dataset given has 299"):
        check_same_rows(signature, dataset.select(range(299)))
    # An older signature (no column hashes) is checked on the count and labels only.
    old = {key: value for key, value in signature.items() if key not in ("column_hashes", "hashed_num_rows")}
    check_same_rows(old, dataset.shuffle(seed=0))
    # Hashes of another set of rows (scores extrapolated from a subset): the count only.
    check_same_rows(signature | {"num_rows": 400}, single_class_dataset(400).shuffle(seed=0))
    relabeled = dataset.cast_column("label", datasets.ClassLabel(3)).map(lambda row: {"label": 2})
    with pytest.raises(DatasetError, match="labels differ .*re-ordered.*original order"):
        check_same_rows(signature, relabeled)
    as_text = dataset.cast_column("label", datasets.Value("string"))
    with pytest.raises(DatasetError, match="not integer class ids; encode it"):
        check_same_rows(signature, as_text.map(lambda row: {"label": "zero"}))


def test_record_check_dataset(trained):
    trainer, dataset, y = trained
    record = trainer.record
    record.check_dataset(dataset)
    record.check_dataset(dataset.with_format("torch"))
    record.check_dataset(dataset.add_column("raw", [f"raw {i}" for i in range(50)]))
    record.check_dataset(dataset.remove_columns("x"))
    with pytest.raises(RecordError, match="labels differ .*re-ordered"):
        record.check_dataset(dataset.shuffle(seed=1))
    with pytest.raises(RecordError, match=r"Column\(s\) \['x'\] .*original order, before any shuffle/filter"):
        record.check_dataset(swap_same_label(dataset, y))
    with pytest.raises(RecordError, match="training set of 50 rows, but the dataset given has 49"):
        record.check_dataset(dataset.select(range(49)))


# ---------------------------------------------------------------------- applying a saved result
def test_saved_result_checks_the_dataset(trained, tmp_path):
    trainer, dataset, y = trained
    path = tmp_path / "saved"
    HFPruner(trainer).save(str(path))
    result = PruneResult.load(str(path))
    assert result.record["dataset"]["column_hashes"]
    shuffled = dataset.shuffle(seed=1)
    with pytest.raises(DatasetError, match="labels differ .*this result was made from"):
        result.check_dataset(shuffled)
    with pytest.raises(DatasetError, match="labels differ"):
        result.to_dataset(shuffled)
    with pytest.raises(DatasetError, match=r"Column\(s\) \['x'\]"):
        result.to_dataset(swap_same_label(dataset, y))
    with pytest.raises(DatasetError, match=r"Column\(s\) \['x'\]|labels differ"):
        HFPruner.load(str(path), dataset=swap_same_label(dataset, y)).prune(0.5)
    with pytest.raises(DatasetError, match="selects from 50 rows but the dataset has 49"):
        result.check_dataset(dataset.select(range(49)))

    pruned = HFPruner.load(str(path), dataset=dataset).prune(0.5)
    assert len(pruned) == 25 and pruned.column_names == ["x", "label", "source_index", "score_dual"]
    raw = dataset.add_column("raw", [f"raw {i}" for i in range(50)]).remove_columns("x")
    from_source = HFPruner.load(str(path), dataset=raw).prune(0.5)  # the same rows in another form
    assert from_source["source_index"] == pruned["source_index"]
    assert from_source["raw"] == [f"raw {i}" for i in pruned["source_index"]]


def test_old_result_without_signature_checks_the_count():
    result = hand_result()
    assert len(result.to_dataset(five_rows().shuffle(seed=0))) == 3  # nothing to compare but the count
    with pytest.raises(DatasetError, match="selects from 5 rows but the dataset has 4"):
        result.to_dataset(five_rows().select(range(4)))


def test_score_column_clash_is_refused(trained):
    trainer, dataset, _ = trained
    result = HFPruner(trainer).select(0.5)
    clashing = dataset.add_column("score_dual", [0.0] * 50)
    with pytest.raises(DatasetError, match=r"\['score_dual'\].*rename_column\('score_dual', 'old_score_dual'\).*"
                                            r"remove_columns\(\['score_dual'\]\)"):
        result.to_dataset(clashing)
    with pytest.raises(DatasetError, match="already has column"):
        result.check_dataset(clashing)
    result.check_dataset(clashing, check_columns=False)
    with pytest.raises(DatasetError, match="already has a `source_index` column"):
        result.check_dataset(dataset.add_column("source_index", list(range(50))))
    assert "score_dual" in result.to_dataset(clashing.rename_column("score_dual", "old_score_dual")).column_names


# ---------------------------------------------------------------------- tampered results
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "saved"
    hand_result().save(str(path))
    return path


def rewrite_array(path, file: str, values) -> None:
    """Replace an array file and its checksum, as a careful hand edit would (so the content checks are reached)."""
    np.save(path / "arrays" / file, values)
    meta = json.loads((path / "result.json").read_text())
    meta["checksums"][file] = file_checksum(path / "arrays" / file)
    (path / "result.json").write_text(json.dumps(meta))


def edit_meta(path, **changes) -> None:
    meta = json.loads((path / "result.json").read_text())
    meta.update(changes)
    (path / "result.json").write_text(json.dumps(meta))


def test_save_load_round_trip_with_checksums(saved):
    meta = json.loads((saved / "result.json").read_text())
    assert set(meta["checksums"]) == set(meta["files"].values())
    assert all(value.startswith("xxh3_64:") for value in meta["checksums"].values())
    loaded = PruneResult.load(str(saved))
    original = hand_result()
    np.testing.assert_array_equal(loaded.kept, original.kept)
    np.testing.assert_array_equal(loaded.scores["dual"], original.scores["dual"])
    np.testing.assert_array_equal(loaded.vectors, original.vectors)
    # A result saved before checksums existed still loads; a CRC-32 checksum is verified as well.
    del meta["checksums"]
    (saved / "result.json").write_text(json.dumps(meta))
    PruneResult.load(str(saved))
    edit_meta(saved, checksums={"kept.npy": "crc32:00000000"})
    with pytest.raises(ResultFormatError, match="'kept'.*does not match the checksum .*modified or damaged"):
        PruneResult.load(str(saved))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([0, 2, 2]), "`kept` lists row 2 more than once"),
        (np.array([3, 0, 2]), r"`kept` is not sorted \(row 3 before row 0\)"),
        (np.array([0, 2, 5]), r"`kept` has rows outside \[0, 5\)"),
        (np.array([-1, 2]), r"`kept` has rows outside \[0, 5\)"),
        (np.array([0.0, 2.0]), "`kept` must be a 1-D integer array .*float64"),
        (np.array([[0, 2]]), "`kept` must be a 1-D integer array .*shape \\(1, 2\\)"),
    ],
)
def test_tampered_kept(saved, values, message):
    rewrite_array(saved, "kept.npy", values)
    with pytest.raises(ResultFormatError, match=message + ".*modified after saving. Re-run the selection"):
        PruneResult.load(str(saved))


@pytest.mark.parametrize(
    ("file", "values", "message"),
    [
        ("labels.npy", np.array([0, 1, -2, 0, 1]), "`labels` holds negative class ids"),
        ("labels.npy", np.array([0, 1, 7, 0, 1]), "class id 7 but there are 3 class names"),
        ("labels.npy", np.array([0.0, 1, 2, 0, 1]), "`labels` must be a 1-D integer array"),
        ("score-dual.npy", np.array([1, 2, 3, 4, 5]), r"score 'dual' must be a float array of shape \(5,\)"),
        ("score-dual.npy", np.zeros(4), r"score 'dual' must be a float array .*shape \(4,\)"),
        ("vectors.npy", np.zeros(5), "influence vectors must be a float matrix with 5 rows"),
        ("vectors.npy", np.zeros((4, 2)), "influence vectors must be a float matrix with 5 rows"),
        ("aux-p_mean.npy", np.zeros(3), "auxiliary array 'p_mean' must be numeric with 5 rows"),
    ],
)
def test_tampered_arrays(saved, file, values, message):
    rewrite_array(saved, file, values)
    with pytest.raises(ResultFormatError, match=message):
        PruneResult.load(str(saved))


def test_flipped_bytes_fail_the_checksum(saved):
    file = saved / "arrays" / "score-dual.npy"
    data = bytearray(file.read_bytes())
    data[-3] ^= 0xFF  # a value changes; the file is still a valid .npy
    file.write_bytes(bytes(data))
    with pytest.raises(ResultFormatError, match=r"'score/dual'.*score-dual\.npy.*does not match the checksum"):
        PruneResult.load(str(saved))


@pytest.mark.parametrize("entry", ["../outside.npy", "/etc/passwd", 3, None, "", "..", "sub/kept.npy"])
def test_file_entries_outside_the_folder(saved, entry):
    np.save(saved.parent / "outside.npy", np.array([0, 1]))  # would be read if the entry were followed
    meta = json.loads((saved / "result.json").read_text())
    meta["files"]["kept"] = entry
    (saved / "result.json").write_text(json.dumps(meta))
    with pytest.raises(ResultFormatError, match=r"`files\['kept'\]` .* must be the name of a file inside"):
        PruneResult.load(str(saved))


def test_symlink_leading_outside_is_refused(saved):
    np.save(saved.parent / "outside.npy", np.array([0, 1]))
    (saved / "arrays" / "link.npy").symlink_to(saved.parent / "outside.npy")
    edit_meta(saved, files={**json.loads((saved / "result.json").read_text())["files"], "kept": "link.npy"})
    with pytest.raises(ResultFormatError, match="links leading elsewhere"):
        PruneResult.load(str(saved))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": 3}, "Field 'method' .* expected a non-empty string"),
        ({"selector": None}, "Field 'selector' .* expected a non-empty string"),
        ({"ratio": "0.5"}, r"Field 'ratio' .* expected null or a number in \(0, 1\)"),
        ({"ratio": 1.5}, r"Field 'ratio' .* expected null or a number in \(0, 1\)"),
        ({"ratio": True}, r"Field 'ratio' .* expected null or a number in \(0, 1\)"),
        ({"epsilon": -1}, "Field 'epsilon' .* expected null or a non-negative number"),
        ({"files": ["kept.npy"]}, "Field 'files' .* expected an object"),
        ({"config": [1]}, "Field 'config' .* expected an object"),
        ({"class_names": "abc"}, "Field 'class_names' .* expected null or a list of strings"),
        ({"num_samples": 6}, "`num_samples` is 6 but `labels` has 5 rows"),
        ({"checksums": {"kept.npy": 1}}, "Field 'checksums' .* checksum strings"),
    ],
)
def test_tampered_fields(saved, changes, message):
    edit_meta(saved, **changes)
    with pytest.raises(ResultFormatError, match=message):
        PruneResult.load(str(saved))


def test_result_json_that_is_not_an_object(saved):
    (saved / "result.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ResultFormatError, match="holds a JSON list, not the object hf_prune writes"):
        PruneResult.load(str(saved))
    edit_meta_missing = {"format_version": 1, "files": {"kept": "kept.npy"}, "method": "dual", "selector": "topk"}
    (saved / "result.json").write_text(json.dumps(edit_meta_missing))
    with pytest.raises(ResultFormatError, match="lists no 'labels' array"):
        PruneResult.load(str(saved))
    (saved / "result.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ResultFormatError, match="lacks the field 'files'"):
        PruneResult.load(str(saved))


# ---------------------------------------------------------------------- exact budgets
def test_keep_count_is_exact():
    assert keep_count(0.7, 45) == 13  # 0.7·45 = 31.5 removes 32 (binary floats: 31.4999… and 14 kept)
    assert keep_count(0.5, 3) == 1  # 1.5 rounds half up: 2 removed
    assert keep_count(0.4, 50) == 30
    for hundredths in range(1, 100):
        ratio = hundredths / 100
        for n in range(1, 201):
            removed = math.floor(Fraction(repr(ratio)) * n + Fraction(1, 2))
            assert keep_count(ratio, n) == n - removed, (ratio, n)


def test_prune_keeps_the_exact_budget(tmp_path):
    trainer = train(learnable_dataset(45)[0], tmp_path)
    assert len(HFPruner(trainer, selector="topk").prune(0.7)) == 13


def test_to_dataset_keeps_the_callers_format():
    """A torch- or numpy-formatted dataset comes back in its format (the new columns too when every column was
    formatted, the same columns when some were); a plain one stays plain; the caller's dataset is unchanged."""
    import torch

    result = hand_result()
    numbers = datasets.Dataset.from_dict({"x": [[float(i), 1.0] for i in range(5)], "label": [0, 1, 2, 0, 1]})
    formatted = numbers.with_format("torch")
    pruned = result.to_dataset(formatted)
    assert formatted.format["type"] == "torch" and len(formatted) == 5  # untouched
    assert pruned.format["type"] == "torch"
    row = pruned[0]
    assert isinstance(row["x"], torch.Tensor) and row["x"].tolist() == [0.0, 1.0]
    assert isinstance(row["source_index"], torch.Tensor) and int(row["source_index"]) == 0
    assert pruned[:]["source_index"].tolist() == [0, 2, 3]

    some = numbers.with_format("numpy", columns=["x"], output_all_columns=True)
    pruned = result.to_dataset(some)
    assert pruned.format["type"] == "numpy" and pruned.format["output_all_columns"]
    row = pruned[1]
    assert isinstance(row["x"], np.ndarray) and row["x"].tolist() == [2.0, 1.0]
    assert row["source_index"] == 2 and not isinstance(row["source_index"], np.ndarray)  # not formatted, still there

    plain = result.to_dataset(numbers)
    assert plain.format["type"] is None and plain[2]["x"] == [3.0, 1.0]


def test_formats_save_to_disk_cannot_store_are_saved_without_their_options(tmp_path):
    """`with_format("torch", dtype=...)` carries a format option that is not JSON: `save_to_disk` refuses it. The
    pruned set keeps it in memory, and every hf_prune save writes the rows with the format type only."""
    import torch

    from hf_prune.hub import save_pruned, save_result

    result = hand_result()
    numbers = datasets.Dataset.from_dict({"x": [[float(i), 1.0] for i in range(5)], "label": [0, 1, 2, 0, 1]})
    typed = numbers.with_format("torch", dtype=torch.float64)
    pruned = result.to_dataset(typed)
    assert pruned[0]["x"].dtype == torch.float64  # the caller's options, in memory
    save_pruned(result, typed, tmp_path / "pruned")
    back = datasets.load_from_disk(str(tmp_path / "pruned"))
    assert back.format["type"] == "torch" and back[:]["source_index"].tolist() == [0, 2, 3]
    assert back[1]["x"].tolist() == [2.0, 1.0]
    save_result(result, tmp_path / "result", typed)
    assert len(PruneResult.load(str(tmp_path / "result")).kept) == 3
    assert datasets.load_from_disk(str(tmp_path / "result" / "dataset"))[4]["x"].tolist() == [4.0, 1.0]


def test_saving_over_a_result_never_deletes_the_users_other_files(tmp_path):
    """A saved result is replaced as a whole directory: a folder that also holds the user's own files is refused
    (they stay), while hf_prune's own entries (card, dataset, pruned rows) are replaced."""
    result = hand_result()
    path = tmp_path / "sel"
    result.save(path)
    (path / "README.md").write_text("card")
    (path / "pruned").mkdir()
    result.save(path)  # only hf_prune's entries: replaced
    assert sorted(p.name for p in path.iterdir()) == ["arrays", "result.json"]
    (path / "NOTES.txt").write_text("mine")
    (path / "report").mkdir()
    with pytest.raises(ResultFormatError, match=r"also \['NOTES.txt', 'report'\].*would delete them"):
        result.save(path)
    assert (path / "NOTES.txt").read_text() == "mine" and (path / "report").is_dir()
    assert len(PruneResult.load(str(path)).kept) == 3
