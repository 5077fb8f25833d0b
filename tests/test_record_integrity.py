"""Integrity of a training record read back: per-file checksums, label-id range checks, caches of read-only records
and the SGD-Influence sweep's progress bar."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import IdentityHead, quiet_args, vector_dataset

import hf_prune.logging as hf_logging
from hf_prune import PruneTrainer
from hf_prune.errors import RecordError
from hf_prune.influence.sweep import SweepConfig, sgd_influence_sweep
from hf_prune.scores import get_score
from hf_prune.scores.base import ScoringContext
from hf_prune.tracking import record as record_module
from hf_prune.tracking.record import TrainingRecord
from hf_prune.tracking.storage import file_checksum


CORRUPTED = r"is corrupted: its \w+ checksum .* changed after training .*Re-run the tracked training .*resume"


@pytest.fixture(scope="module")
def trained_record(tmp_path_factory):
    """One finished record (48 rows, 3 classes, eval set of 16 rows) trained once; tests copy it before damaging it."""
    root = tmp_path_factory.mktemp("integrity")
    dataset, _, _ = vector_dataset(n=48)
    evalset, _, _ = vector_dataset(n=16, seed=1)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(root / "run"), train_dataset=dataset,
                           eval_dataset=evalset)
    trainer.train()
    return Path(trainer.record_dir), dataset


@pytest.fixture
def record_copy(trained_record, tmp_path):
    source, _ = trained_record
    target = tmp_path / "record"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("influence"))  # no cached sweep
    return target


def _zero_middle(path: Path, count: int = 256) -> None:
    data = bytearray(path.read_bytes())
    assert len(data) >= count, f"{path.name} is too small for the test"
    lo = (len(data) - count) // 2
    before = bytes(data[lo : lo + count])
    data[lo : lo + count] = bytes(count)
    assert bytes(data[lo : lo + count]) != before, "the zeroed bytes must change the file"
    path.write_bytes(bytes(data))


def _scores(path: Path) -> dict[str, np.ndarray]:
    record = TrainingRecord(path)
    context = ScoringContext(seed=0)
    return {
        "dual": get_score("dual")(record, context).values,
        "el2n": get_score("el2n")(record, context).values,
        "sgd_influence": get_score("sgd_influence")(record, context).values,
    }


def _rewrite_meta(path: Path, edit) -> None:
    meta_path = path / "record.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))


# ---------------------------------------------------------------------- checksums
def test_finished_record_stores_a_checksum_per_file(trained_record):
    path, _ = trained_record
    meta = json.loads((path / "record.json").read_text())
    assert meta["checksums"]["algorithm"] == "xxh3_64"
    files = meta["checksums"]["files"]
    assert {"labels.bin", "rank-00000/occ_index.bin", "rank-00000/occ_features.bin", "rank-00000/step_lr.bin",
            "query/features.bin", "query/logits.bin", "query/labels.bin"} <= set(files)
    # Exactly the committed bytes: the whole file here, as a finished single-process record has nothing past them.
    for relative, digest in files.items():
        assert file_checksum(path / relative, "xxh3_64") == digest, relative


@pytest.mark.parametrize(("relative", "read"), [
    ("rank-00000/occ_logits.bin", lambda record: record.occurrences["logits"]),
    ("rank-00000/occ_features.bin", lambda record: record.occurrences["features"]),
    ("labels.bin", lambda record: record.labels),
    ("query/features.bin", lambda record: record.auxiliary("query")),
])
def test_zeroed_bytes_are_a_record_error(record_copy, relative, read):
    _zero_middle(record_copy / relative)
    record = TrainingRecord(record_copy)  # opening reads only record.json
    name = Path(relative).name.replace(".", r"\.")
    with pytest.raises(RecordError, match=rf"Record file .*{name}' {CORRUPTED}"):
        read(record)
    with pytest.raises(RecordError, match=CORRUPTED):  # a failed check is not remembered as passed
        read(record)


def test_corrupted_column_stops_scoring(record_copy):
    _zero_middle(record_copy / "rank-00000" / "occ_logits.bin")
    with pytest.raises(RecordError, match=rf"occ_logits\.bin' {CORRUPTED}"):
        get_score("dual")(TrainingRecord(record_copy), ScoringContext())


def test_each_file_is_hashed_once_per_record(record_copy, monkeypatch):
    hashed = []

    def counting(path, algorithm, nbytes=None):
        hashed.append(Path(path).name)
        return file_checksum(path, algorithm, nbytes)

    monkeypatch.setattr(record_module, "file_checksum", counting)
    record = TrainingRecord(record_copy)
    for _ in range(3):
        _ = record.occurrences["logits"], record.labels, record.auxiliary("query")
    assert sorted(hashed) == sorted(["occ_label.bin", "occ_logits.bin", "labels.bin", "features.bin", "labels.bin",
                                     "logits.bin"])
    # `dual` hashes what it reads and never the features (the largest column).
    get_score("dual")(record, ScoringContext())
    assert "occ_features.bin" not in hashed


def test_untouched_record_scores_identically_with_and_without_verification(record_copy, monkeypatch, tmp_path):
    verified = _scores(record_copy)
    shutil.rmtree(record_copy / "influence")  # recompute the sweep rather than read its cache
    monkeypatch.setattr(record_module, "_VERIFY_CHECKSUMS", False)
    unverified = _scores(record_copy)
    for name in verified:
        np.testing.assert_array_equal(verified[name], unverified[name], err_msg=name)


def test_record_without_checksums_still_reads(record_copy, trained_record):
    expected = _scores(record_copy)
    shutil.rmtree(record_copy / "influence")
    _rewrite_meta(record_copy, lambda meta: meta.pop("checksums"))
    _zero_middle(record_copy / "rank-00000" / "occ_loss.bin")  # unverifiable: an old record is read as it is
    record = TrainingRecord(record_copy)
    assert record.auxiliary("query") is not None
    for name, values in _scores(record_copy).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)


def test_a_file_missing_from_the_checksums_is_an_error(record_copy):
    _rewrite_meta(record_copy, lambda meta: meta["checksums"]["files"].pop("labels.bin"))
    with pytest.raises(RecordError, match=r"has no checksum for 'labels\.bin'.*record\.json was edited.*Re-run"):
        _ = TrainingRecord(record_copy).labels


def test_final_set_written_later_is_verified(record_copy):
    record = TrainingRecord(record_copy)
    rng = np.random.default_rng(0)
    final = {"features": rng.normal(size=(48, 5)).astype(np.float32), "logits": rng.normal(size=(48, 3))}
    record.write_auxiliary("final", final)
    descriptor = json.loads((record_copy / "final" / "arrays.json").read_text())
    assert descriptor["features"]["checksum_algorithm"] == "xxh3_64"
    np.testing.assert_array_equal(TrainingRecord(record_copy).auxiliary("final")["logits"], final["logits"])
    _zero_middle(record_copy / "final" / "logits.bin")
    with pytest.raises(RecordError, match=rf"final/logits\.bin' {CORRUPTED}"):
        TrainingRecord(record_copy).auxiliary("final")


# ---------------------------------------------------------------------- label ids
def _write_with_checksum(path: Path, relative: str, values: np.ndarray) -> None:
    """Write a column and update its checksum, as a (buggy) writer would: only the range check can catch it."""
    (path / relative).write_bytes(values.tobytes())
    digest = file_checksum(path / relative, "xxh3_64")
    _rewrite_meta(path, lambda meta: meta["checksums"]["files"].__setitem__(relative, digest))


def test_huge_label_id_in_labels_is_a_record_error(record_copy):
    labels = np.fromfile(record_copy / "labels.bin", dtype="<i8")
    labels[5] = 10**12
    _write_with_checksum(record_copy, "labels.bin", labels)
    with pytest.raises(RecordError, match=r"label id 1000000000000 in labels\.bin, outside \[0, 3\) .*3 classes.*Re-run"):
        _ = TrainingRecord(record_copy).labels


def test_negative_label_id_in_occurrences_is_a_record_error(record_copy):
    labels = np.fromfile(record_copy / "rank-00000" / "occ_label.bin", dtype="<i8")
    labels[-1] = -4
    _write_with_checksum(record_copy, "rank-00000/occ_label.bin", labels)
    with pytest.raises(RecordError, match=r"label id -4 in the occurrence column occ_label\.bin, outside \[0, 3\)"):
        get_score("dual")(TrainingRecord(record_copy), ScoringContext())


# ---------------------------------------------------------------------- caches of read-only records
@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    cache = tmp_path / "user_cache"
    monkeypatch.setenv("HF_PRUNE_CACHE", str(cache))
    return cache


def _record_read_only(monkeypatch, record_path: Path) -> None:
    """Make `os.access` report the record directory read-only.

    The tests run as root, which ignores permission bits, so `chmod` cannot make a directory read-only here. This
    proves the code consults the writability check and routes every write to the user cache; that a real write
    failure is handled too is checked separately (`test_real_write_failure_falls_back`).
    """
    real_access = os.access
    blocked = str(record_path.resolve())

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and str(Path(path).resolve()).startswith(blocked):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def _files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def test_read_only_record_caches_in_the_user_cache(record_copy, trained_record, user_cache, monkeypatch):
    expected = _scores(trained_record[0])
    before = _files_under(record_copy)
    _record_read_only(monkeypatch, record_copy)
    record = TrainingRecord(record_copy)
    influence = get_score("sgd_influence")(record, ScoringContext())
    dual = get_score("dual")(record, ScoringContext())
    np.testing.assert_allclose(influence.values, expected["sgd_influence"], rtol=1e-6)
    np.testing.assert_array_equal(dual.values, expected["dual"])
    cache = user_cache / "records" / record.identity / "influence"
    assert any(cache.glob("sgd_influence-*.json"))
    assert record.cache_dir("final") == user_cache / "records" / record.identity / "final"
    record.write_auxiliary("final", {"logits": np.ones((48, 3))})
    assert TrainingRecord(record_copy).auxiliary("final")["logits"].shape == (48, 3)
    assert _files_under(record_copy) == before  # nothing was written into the record
    again = get_score("sgd_influence")(TrainingRecord(record_copy), ScoringContext())
    assert again.info["cached"] is True


def test_real_write_failure_falls_back(record_copy, user_cache, monkeypatch):
    """`os.access` says yes (root) but creating the cache inside the record fails, as on a read-only mount."""
    real_mkdir = Path.mkdir
    blocked = str(record_copy.resolve())

    def mkdir(self, *args, **kwargs):
        if str(self.resolve()).startswith(blocked):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    record = TrainingRecord(record_copy)
    assert record.cache_dir("influence") == user_cache / "records" / record.identity / "influence"
    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(RecordError, match=r"record directory is read-only and the user cache .* not writable .*"
                                          r"Set the environment variable `HF_PRUNE_CACHE` to a writable directory"):
        record.cache_dir("scores")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permission bits")
def test_chmod_read_only_record(record_copy, user_cache):
    os.chmod(record_copy, 0o555)
    try:
        record = TrainingRecord(record_copy)
        get_score("sgd_influence")(record, ScoringContext())
        assert any((user_cache / "records" / record.identity / "influence").glob("*.json"))
    finally:
        os.chmod(record_copy, 0o755)


# ---------------------------------------------------------------------- progress bar
def test_sweep_shows_a_progress_bar_unless_disabled(trained_record, monkeypatch, capsys):
    record = TrainingRecord(trained_record[0])
    config = SweepConfig(sketch_size=4, query=False)
    monkeypatch.setattr(hf_logging, "_progress_enabled", True)
    sgd_influence_sweep(record, config)
    assert "SGD-Influence sweep" in capsys.readouterr().err
    monkeypatch.setattr(hf_logging, "_progress_enabled", False)
    sgd_influence_sweep(record, config)
    assert "SGD-Influence sweep" not in capsys.readouterr().err
