"""Saving, loading and publishing: the real datasets/huggingface_hub clients against the loopback fake Hub."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
import yaml
from conftest import IdentityHead, quiet_args, vector_dataset

from hf_prune import HFPruner, PruneResult, PruneTrainer, push_to_hub
from hf_prune.errors import HubError, InvalidArgumentError, ResultFormatError


TOKEN = "hf_fake_token_123"


@pytest.fixture
def trained(tmp_path):
    dataset, _, _ = vector_dataset(n=60)
    eval_ds, _, _ = vector_dataset(n=20, seed=4)
    torch.manual_seed(0)
    trainer = PruneTrainer(model=IdentityHead(), args=quiet_args(tmp_path / "run", num_train_epochs=3),
                           train_dataset=dataset, eval_dataset=eval_ds)
    trainer.train()
    return trainer, dataset


def readme_yaml(text: str) -> dict:
    return yaml.safe_load(text.split("---")[1])


# ---------------------------------------------------------------------- save / load
@pytest.mark.parametrize(("method", "selector"), [("el2n", None), ("dual", "dual_beta"), ("sgd_influence", None)])
def test_save_load_reprune_equals_direct(trained, tmp_path, method, selector):
    trainer, dataset = trained
    kwargs = {"method": method, **({"selector": selector} if selector else {})}
    first = HFPruner(trainer, **kwargs)
    first.select(0.3)
    first.save(str(tmp_path / "saved"))
    loaded = HFPruner.load(str(tmp_path / "saved"))
    again = loaded.prune(0.6)
    direct = HFPruner(trainer, **kwargs).prune(0.6)
    assert again["source_index"] == direct["source_index"]
    assert again.column_names == direct.column_names
    np.testing.assert_allclose(np.asarray(again[f"score_{method}"]), np.asarray(direct[f"score_{method}"]))


def test_load_with_another_selector_and_without_dataset(trained, tmp_path):
    trainer, dataset = trained
    pruner = HFPruner(trainer, method="sgd_influence")
    pruner.select(0.5)
    pruner.save(str(tmp_path / "saved"), include_dataset=False)
    loaded = HFPruner.load(str(tmp_path / "saved"), selector="topk")
    assert loaded.select(0.5).num_kept == 30  # selection works without the dataset
    with pytest.raises(InvalidArgumentError, match="no training set to take rows from"):
        loaded.prune(0.5)
    assert len(HFPruner.load(str(tmp_path / "saved"), dataset=dataset, selector="topk").prune(0.5)) == 30
    with pytest.raises(InvalidArgumentError, match="`method='forgetting'` was not computed"):
        HFPruner.load(str(tmp_path / "saved"), method="forgetting")


def test_corrupted_and_incompatible_results(trained, tmp_path):
    trainer, _ = trained
    path = tmp_path / "saved"
    HFPruner(trainer).save(str(path))
    meta = json.loads((path / "result.json").read_text())
    meta["format_version"] = 99
    (path / "result.json").write_text(json.dumps(meta))
    with pytest.raises(ResultFormatError, match="format version 99.*reads version 1"):
        PruneResult.load(str(path))
    HFPruner(trainer).save(str(path))
    kept = path / "arrays" / "kept.npy"
    kept.write_bytes(kept.read_bytes()[:40])
    with pytest.raises(ResultFormatError, match="missing, truncated or corrupted"):
        PruneResult.load(str(path))
    (path / "result.json").write_text("{not json")
    with pytest.raises(ResultFormatError, match="is corrupted"):
        PruneResult.load(str(path))
    with pytest.raises(ResultFormatError, match="No saved hf_prune result"):
        PruneResult.load(str(tmp_path / "nothing"))


def test_saved_arrays_load_without_pickle(trained, tmp_path):
    trainer, _ = trained
    HFPruner(trainer, method="sgd_influence").save(str(tmp_path / "saved"))
    for file in (tmp_path / "saved" / "arrays").iterdir():
        np.load(file, allow_pickle=False)  # raises if anything needed pickle


# ---------------------------------------------------------------------- push
def test_push_pruned_and_scores_configs_with_card(trained, fake_hub, tmp_path, capsys):
    trainer, dataset = trained
    pruner = HFPruner(trainer, method="dual")
    url = pruner.push_to_hub("tester/pruned", 0.4, local_dir=str(tmp_path / "local"))
    assert url.endswith("/datasets/tester/pruned")
    repo = fake_hub.repos["tester/pruned"]
    files = set(repo.files)
    assert any(f.startswith("data/train-") and f.endswith(".parquet") for f in files)
    assert any(f.startswith("scores/train-") and f.endswith(".parquet") for f in files)
    readme = repo.text("README.md")
    meta = readme_yaml(readme)
    assert {c["config_name"] for c in meta["configs"]} == {"default", "scores"}
    assert {i["config_name"] for i in meta["dataset_info"]} == {"default", "scores"}
    facts = meta["hf_prune"]
    assert facts["method"] == "dual" and facts["pruning_ratio"] == 0.4
    assert facts["rows"] == {"source": 60, "kept": 36, "removed": 24}
    assert sum(facts["kept_per_class"].values()) == 36
    assert "higher means keep" in facts["score_convention"]
    assert "hf-prune" in meta["tags"]
    assert "## How this dataset was pruned" in readme and "36 of 60" in readme

    pruned = datasets.load_dataset("tester/pruned", split="train")
    scores = datasets.load_dataset("tester/pruned", "scores", split="train")
    assert len(pruned) == 36 and len(scores) == 60
    assert pruned.features["label"] == dataset.features["label"]
    assert scores.features["label"].names == dataset.features["label"].names
    assert sum(scores["keep"]) == 36
    assert pruned["source_index"] == [i for i, keep in enumerate(scores["keep"]) if keep]
    # Tokens never leave the headers.
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and TOKEN not in readme
    for path in (tmp_path / "local").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()
    # The local copy carries the card too, so a push that fails leaves a copy that says how it was made.
    assert "keeps **36 of 60** rows" in (tmp_path / "local" / "pruned" / "README.md").read_text()
    assert all(r.authorization in (None, f"Bearer {TOKEN}") for r in fake_hub.requests_log)

    # Re-prune at another ratio from the pushed scores config alone, without the model.
    rows = np.argsort(-np.asarray(scores["score_dual"]), kind="stable")[:12]
    assert len(rows) == 12

    # A second push (another ratio) updates the same repo, merging the card again.
    pruner.push_to_hub("tester/pruned", 0.8, local_dir=str(tmp_path / "local"))
    meta = readme_yaml(fake_hub.repos["tester/pruned"].text("README.md"))
    assert meta["hf_prune"]["pruning_ratio"] == 0.8
    assert readme.count("## How this dataset was pruned") == 1
    assert len(datasets.load_dataset("tester/pruned", split="train", download_mode="force_redownload")) == 12

    # A push of another method to the same repo (other score columns) leaves a repo that loads, both configs.
    HFPruner(trainer, method="el2n").push_to_hub("tester/pruned", 0.5, local_dir=str(tmp_path / "local"))
    again = datasets.load_dataset("tester/pruned", split="train", download_mode="force_redownload")
    assert len(again) == 30 and "score_el2n" in again.column_names and "score_dual" not in again.column_names
    scores_again = datasets.load_dataset("tester/pruned", "scores", split="train", download_mode="force_redownload")
    assert "score_el2n" in scores_again.column_names and len(scores_again) == 60


def test_foreign_repo_needs_a_flag(trained, fake_hub, tmp_path):
    trainer, dataset = trained
    fake_hub.seed("tester/someone-elses", {"README.md": "---\nlicense: mit\n---\n# Not ours\n"})
    pruner = HFPruner(trainer)
    with pytest.raises(HubError, match="already exists and was not made by hf_prune.*allow_foreign_repo=True"):
        pruner.push_to_hub("tester/someone-elses", 0.5, local_dir=str(tmp_path / "local"))
    pruner.push_to_hub("tester/someone-elses", 0.5, allow_foreign_repo=True, local_dir=str(tmp_path / "local"))
    readme = fake_hub.repos["tester/someone-elses"].text("README.md")
    assert "# Not ours" in readme and readme_yaml(readme)["license"] == "mit"


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "bad name/x", "", 3])
def test_invalid_repo_id(trained, repo_id):
    with pytest.raises(InvalidArgumentError, match="repo"):
        HFPruner(trained[0]).push_to_hub(repo_id, 0.5)


def test_missing_token_says_how_to_log_in(trained, fake_hub, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubError, match="hf auth login"):
        HFPruner(trained[0]).push_to_hub("tester/x", 0.5, local_dir=str(tmp_path / "local"))
    assert not (tmp_path / "local").exists()  # refused before anything was written (it left an unannounced copy)


def test_unreachable_hub_keeps_the_local_copy(trained, fake_hub, tmp_path):
    fake_hub.refuse_connections()
    local = tmp_path / "local"
    with pytest.raises(HubError, match="Nothing is lost") as error:
        HFPruner(trained[0]).push_to_hub("tester/x", 0.5, local_dir=str(local))
    assert str(local) in str(error.value) and TOKEN not in str(error.value)
    assert len(datasets.load_from_disk(str(local / "pruned"))) == 30
    assert len(datasets.load_from_disk(str(local / "scores"))) == 60


def test_push_failing_halfway_can_be_retried(trained, fake_hub, tmp_path):
    trainer, _ = trained
    pruner = HFPruner(trainer)
    # Every commit that carries the scores config fails: the pruned split lands, the scores do not.
    fake_hub.fail_paths(lambda method, path: method == "POST" and "/commit/" in path and fake_hub.repos.get(
        "tester/halfway") is not None and any(f.startswith("data/") for f in fake_hub.repos["tester/halfway"].files))
    with pytest.raises(HubError, match="Retry the same push"):
        pruner.push_to_hub("tester/halfway", 0.5, local_dir=str(tmp_path / "local"))
    assert not any(f.startswith("scores/") for f in fake_hub.repos["tester/halfway"].files)
    fake_hub.clear_failures()
    pruner.push_to_hub("tester/halfway", 0.5, local_dir=str(tmp_path / "local"))  # recognised as ours, completes
    assert len(datasets.load_dataset("tester/halfway", "scores", split="train")) == 60


def test_function_form(trained, fake_hub, tmp_path):
    trainer, dataset = trained
    result = HFPruner(trainer).select(0.5)
    push_to_hub(result, dataset, "tester/function-form", local_dir=str(tmp_path / "local"))
    assert "hf_prune" in readme_yaml(fake_hub.repos["tester/function-form"].text("README.md"))


def test_card_records_what_the_default_selector_decided(trained, tmp_path):
    from hf_prune.hub import provenance

    pruner = HFPruner(trained[0])
    result = pruner.select(0.5)
    facts = provenance(result)
    outcome = facts["selection_outcome"]
    assert outcome["memorization_gap"] == pytest.approx(result.info["selection"]["memorization_gap"], abs=1e-6)
    assert outcome["cutoff_applied"] is (outcome["memorization_gap"] >= 0.15)
    assert "hard_side" not in outcome and "hard_floor" not in outcome  # options of the benchmark's lab selector only
    assert facts["selection"]["selector_options"]["inclusion"] == "successive"
    assert facts["selection"]["selector_options"]["hard_cutoff"] == "regime"
    assert yaml.safe_load(yaml.safe_dump(facts))["selection_outcome"] == outcome  # plain YAML values
    # The same facts after a save/load round trip.
    pruner.save(str(tmp_path / "saved"))
    assert provenance(HFPruner.load(str(tmp_path / "saved")).select(0.5))["selection_outcome"] == outcome


def test_only_the_main_process_writes(trained, tmp_path, monkeypatch):
    # Under torch.distributed every process may call save / save_to_disk / push_to_hub: the others return the path
    # and write nothing, so two processes never write one directory at once (they raced: missing `arrays`).
    trainer, dataset = trained
    pruner = HFPruner(trainer)
    pruner.select(0.5)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert pruner.save(str(tmp_path / "saved")) == str(tmp_path / "saved")
    assert pruner.save_to_disk(str(tmp_path / "pruned")) == str(tmp_path / "pruned")
    assert pruner.push_to_hub("me/pruned", local_dir=str(tmp_path / "push")).endswith("/datasets/me/pruned")
    assert not any((tmp_path / name).exists() for name in ("saved", "pruned", "push"))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)  # the main process writes
    pruner.save(str(tmp_path / "saved"))
    assert HFPruner.load(str(tmp_path / "saved")).select(0.5).kept.tolist() == pruner.result.kept.tolist()


def test_a_refused_token_is_not_called_a_network_problem(trained, fake_hub, tmp_path):
    """A 403 (the token cannot write to that namespace) names the permission, not a retry when the Hub is reachable;
    the local copy is kept."""
    pruner = HFPruner(trained[0])
    with pytest.raises(HubError, match=r"refused the token \(403\): it cannot write to 'someone/new-repo'") as err:
        pruner.push_to_hub("someone/new-repo", 0.5, local_dir=str(tmp_path / "local"))
    assert "when the Hub is reachable" not in str(err.value)
    assert (tmp_path / "local" / "pruned" / "README.md").is_file()
