"""The `fake_hub` fixture works with the real `datasets` / `huggingface_hub` clients (push, load, cards, failures)."""

from __future__ import annotations

import datasets
import httpx2
import pytest
import yaml
from huggingface_hub import DatasetCard, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError


# huggingface_hub's LFS upload passes raw bytes as `data=`, which httpx2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

LABELS = ["neg", "pos", "neutral"]
FEATURES = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=LABELS)})


def _train(n: int, offset: int = 0) -> datasets.Dataset:
    rows = range(offset, offset + n)
    return datasets.Dataset.from_dict({"text": [f"row {i}" for i in rows], "label": [i % 3 for i in rows]}, FEATURES)


def _scores() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"index": [0, 1, 2, 3], "score": [0.5, -1.25, 3.0, 0.0]})


def _yaml_header(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_push_two_configs_overwrite_split_and_load_back(fake_hub):
    _train(6).push_to_hub("tester/demo", split="train", num_shards=2)
    repo = fake_hub.repos["tester/demo"]
    assert {"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet", "README.md"} <= set(repo.files)

    _scores().push_to_hub("tester/demo", config_name="scores", split="train")
    _train(4, offset=100).push_to_hub("tester/demo", split="train")  # overwrite: one shard replaces the old two

    files = set(repo.files)
    assert "data/train-00000-of-00001.parquet" in files
    assert not any(name.endswith("-of-00002.parquet") for name in files), files
    assert "scores/train-00000-of-00001.parquet" in files
    header = _yaml_header(repo.text("README.md"))
    assert [c["config_name"] for c in header["configs"]] == ["default", "scores"]
    assert [info["config_name"] for info in header["dataset_info"]] == ["default", "scores"]
    assert [c.title for c in repo.commits][0] == "initial commit"
    assert len(repo.commits) == 4

    loaded = datasets.load_dataset("tester/demo", download_mode="force_redownload")
    assert list(loaded) == ["train"]
    assert loaded["train"]["text"] == [f"row {i}" for i in range(100, 104)]
    assert loaded["train"]["label"] == [i % 3 for i in range(100, 104)]
    assert loaded["train"].features == FEATURES
    assert loaded["train"].features["label"].names == LABELS

    scores = datasets.load_dataset("tester/demo", "scores", split="train", download_mode="force_redownload")
    assert scores["index"] == [0, 1, 2, 3]
    assert scores["score"] == [0.5, -1.25, 3.0, 0.0]

    api = HfApi()
    assert set(api.list_repo_files("tester/demo", repo_type="dataset")) == files
    [info] = api.get_paths_info("tester/demo", ["scores/train-00000-of-00001.parquet"], repo_type="dataset")
    assert info.size == len(repo.files["scores/train-00000-of-00001.parquet"]) and info.lfs is not None
    history = api.list_repo_commits("tester/demo", repo_type="dataset")
    assert [c.commit_id for c in history] == [c.sha for c in reversed(repo.commits)]
    assert history[-1].title == "initial commit" and history[0].authors == ["tester"]
    readme = hf_hub_download("tester/demo", "README.md", repo_type="dataset")
    assert open(readme, encoding="utf-8").read() == repo.text("README.md")

    # Every Hub API call carried the fixture's token (the LFS PUT goes to the storage URL, which gets no token).
    api_calls = [r for r in fake_hub.requests_log if r.path.startswith("/api/") and "agent-harnesses" not in r.path]
    assert api_calls and {r.authorization for r in api_calls} == {"Bearer hf_fake_token_123"}
    assert fake_hub.unhandled == []


def test_dataset_card_round_trip_keeps_configs(fake_hub):
    _train(5).push_to_hub("tester/demo", split="train")
    _scores().push_to_hub("tester/demo", config_name="scores", split="train")
    before = _yaml_header(fake_hub.repos["tester/demo"].text("README.md"))

    card = DatasetCard.load("tester/demo")
    assert [c["config_name"] for c in card.data.configs] == ["default", "scores"]
    card.data.tags = ["pruned", "hf-prune"]
    card.text = "\n# Pruned demo\n\nKept 5 of 5 rows.\n"
    card.push_to_hub("tester/demo", commit_message="Update card")

    readme = fake_hub.repos["tester/demo"].text("README.md")
    after = _yaml_header(readme)
    assert after["configs"] == before["configs"]
    assert after["dataset_info"] == before["dataset_info"]
    assert after["tags"] == ["pruned", "hf-prune"]
    assert "# Pruned demo" in readme
    assert fake_hub.repos["tester/demo"].commits[-1].title == "Update card"

    reloaded = datasets.load_dataset("tester/demo", split="train", download_mode="force_redownload")
    assert reloaded.features["label"].names == LABELS


def test_failing_commit_makes_push_raise_and_leaves_repo_unchanged(fake_hub):
    _train(3).push_to_hub("tester/demo", split="train")
    head = fake_hub.repos["tester/demo"].sha
    fake_hub.fail_paths(lambda method, path: method == "POST" and "/commit/" in path, status=500)
    with pytest.raises(HfHubHTTPError) as excinfo:
        _scores().push_to_hub("tester/demo", config_name="scores", split="train")
    assert excinfo.value.response.status_code == 500
    assert fake_hub.repos["tester/demo"].sha == head
    failed = [r for r in fake_hub.requests_log if "/commit/" in r.path and r.status == 500]
    assert len(failed) == 1  # create_commit does not retry the commit POST itself
    assert not any(p.startswith("scores/") for p in fake_hub.repos["tester/demo"].files)

    # A transient 500 on an endpoint called through http_backoff (preupload, LFS, tree) is retried and the push works.
    fake_hub.clear_failures()
    fake_hub.fail_next(2, status=500, predicate=lambda method, path: "/preupload/" in path)
    _scores().push_to_hub("tester/demo", config_name="scores", split="train")
    assert "scores/train-00000-of-00001.parquet" in fake_hub.repos["tester/demo"].files
    assert [r.status for r in fake_hub.requests_log if "/preupload/" in r.path][-4:] == [500, 500, 200, 200]


def test_failing_upload_halfway_and_dropped_connections(fake_hub):
    fake_hub.fail_paths(lambda method, path: method == "PUT", status=500)
    with pytest.raises(RuntimeError, match="Error while uploading"):
        _train(3).push_to_hub("tester/demo", split="train")
    # The repo was created before the upload failed, but no data commit happened.
    assert set(fake_hub.repos["tester/demo"].files) == {".gitattributes"}

    fake_hub.clear_failures()
    fake_hub.fail_next(2, status=None)  # two dropped connections on GETs that are not retried
    with pytest.raises(httpx2.RemoteProtocolError):
        HfApi().repo_info("tester/demo", repo_type="dataset")
    with pytest.raises(httpx2.RemoteProtocolError):
        HfApi().repo_info("tester/demo", repo_type="dataset")
    assert HfApi().repo_info("tester/demo", repo_type="dataset").id == "tester/demo"


def test_unreachable_hub_foreign_namespace_and_missing_token(fake_hub, monkeypatch):
    assert HfApi().whoami()["name"] == "tester"
    with pytest.raises(RepositoryNotFoundError):
        HfApi().repo_info("tester/missing", repo_type="dataset")

    fake_hub.seed("someone/else", {"README.md": "---\nlicense: mit\n---\nNot ours.\n"})
    assert "Not ours." in DatasetCard.load("someone/else").text
    with pytest.raises(HfHubHTTPError) as excinfo:
        _train(3).push_to_hub("someone/else", split="train")
    assert excinfo.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        _train(3).push_to_hub("someone/new-repo", split="train")
    assert excinfo.value.response.status_code == 403

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HfHubHTTPError) as excinfo:
        _train(3).push_to_hub("tester/demo", split="train")
    assert excinfo.value.response.status_code == 401
    assert fake_hub.requests_log[-1].authorization is None

    fake_hub.refuse_connections()
    with pytest.raises(httpx2.ConnectError):
        _train(3).push_to_hub("tester/demo", split="train")
