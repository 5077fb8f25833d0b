"""`hf-prune` end to end on a tiny dataset: train -> select -> select again -> report -> push (fake Hub)."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets
import pytest

from hf_prune.cli import main


def test_cli_end_to_end(tmp_path, fake_hub, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `push` keeps its local copy under ./hf_prune_push
    run = tmp_path / "run"
    assert main(["train", "--task", "fashion_mnist", "--per_class", "12", "--output_dir", str(run),
                 "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--report_to", "none",
                 "--save_strategy", "no", "--use_cpu", "--quiet"]) == 0
    assert (run / "prune_record" / "record.json").is_file() and (run / "hf_prune_train.json").is_file()

    config = tmp_path / "select.yaml"
    config.write_text(f"run_dir: {run}\nratio: 0.5\nmin_per_class: 1\nmethod: dual\n")
    first = tmp_path / "sel50"
    assert main(["select", "--config", str(config), "--output", str(first), "--quiet"]) == 0
    pruned = datasets.load_from_disk(str(first / "pruned"))
    assert len(pruned) == 60 and "score_dual" in pruned.column_names

    second = tmp_path / "sel80"
    assert main(["select", "--result", str(first), "--ratio", "0.8", "--selector", "dual_beta",
                 "--options", json.dumps({"sampling": "systematic"}), "--output", str(second), "--quiet"]) == 0
    assert len(datasets.load_from_disk(str(second / "pruned"))) == 24

    report = tmp_path / "report"
    assert main(["report", "--result", str(second), "--output", str(report)]) == 0
    for png in ("score_distributions.png", "kept_per_class.png"):
        assert (report / png).stat().st_size > 5000
    assert "kept 24 of 120 rows" in (report / "report.md").read_text()

    assert main(["push", "--result", str(second), "--repo_id", "tester/cli-pruned"]) == 0
    readme = fake_hub.repos["tester/cli-pruned"].text("README.md")
    assert "hf_prune:" in readme and "dual_beta" in readme
    out = capsys.readouterr()
    assert "hf_fake_token_123" not in out.out + out.err


def test_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no hf_prune_train.json"):
        main(["select", "--run_dir", str(tmp_path), "--ratio", "0.5"])
    assert main(["select", "--result", str(tmp_path / "missing"), "--ratio", "0.5"]) == 1
    assert "No saved hf_prune result" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_cli_help_is_useful():
    done = subprocess.run([sys.executable, "-m", "hf_prune.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "select", "push", "report"):
        assert command in done.stdout
    done = subprocess.run([sys.executable, "-m", "hf_prune.cli", "select", "--help"], capture_output=True, text=True,
                          check=True)
    assert "--ratio" in done.stdout and "Fraction of rows to REMOVE" in done.stdout
