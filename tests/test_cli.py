"""`hf-prune` end to end on a tiny dataset: train -> select -> select again -> report -> push (fake Hub); compare."""

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
    assert main(["select", "--config", str(config), "--output_dir", str(first), "--quiet"]) == 0
    pruned = datasets.load_from_disk(str(first / "pruned"))
    assert len(pruned) == 60 and "score_dual" in pruned.column_names
    # Provenance travels with every local output: a dataset card next to the result and in the pruned dataset.
    for card in (first / "README.md", first / "pruned" / "README.md"):
        assert "hf_prune:" in card.read_text() and "dual" in card.read_text()

    second = tmp_path / "sel80"
    assert main(["select", "--result", str(first), "--ratio", "0.8", "--selector", "dual_beta",
                 "--options", json.dumps({"sampling": "systematic"}), "--output_dir", str(second), "--quiet"]) == 0
    assert len(datasets.load_from_disk(str(second / "pruned"))) == 24
    capsys.readouterr()

    # `--output` (the old name) still works, with a one-line deprecation warning.
    third = tmp_path / "sel80-old-flag"
    assert main(["select", "--result", str(second), "--ratio", "0.8", "--output", str(third), "--quiet"]) == 0
    assert len(datasets.load_from_disk(str(third / "pruned"))) == 24
    warning = capsys.readouterr().err.strip().splitlines()
    assert warning == ["hf-prune select: warning: --output is deprecated, use --output_dir (same meaning)."]

    report = tmp_path / "report"
    assert main(["report", "--result", str(second), "--output_dir", str(report)]) == 0
    for png in ("score_distributions.png", "kept_per_class.png"):
        assert (report / png).stat().st_size > 5000
    text = (report / "report.md").read_text()
    assert "kept 24 of 120 rows" in text
    quality = json.loads((second / "result.json").read_text())["info"]["run_quality"]
    assert f"training loss {quality['train_loss']:.4f}" in text  # how well the scoring run trained

    assert main(["push", "--result", str(second), "--repo_id", "tester/cli-pruned"]) == 0
    readme = fake_hub.repos["tester/cli-pruned"].text("README.md")
    assert "hf_prune:" in readme and "dual_beta" in readme
    out = capsys.readouterr()
    assert "hf_fake_token_123" not in out.out + out.err


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["select", "--run_dir", str(tmp_path), "--ratio", "0.5"]) == 1
    assert "no hf_prune_train.json" in capsys.readouterr().err
    assert main(["select", "--result", str(tmp_path / "missing"), "--ratio", "0.5"]) == 1
    assert "No saved hf_prune result" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_cli_help_is_useful():
    done = subprocess.run([sys.executable, "-m", "hf_prune.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "select", "compare", "push", "report"):
        assert command in done.stdout
    assert "--output_dir" in done.stdout and "--output " not in done.stdout
    done = subprocess.run([sys.executable, "-m", "hf_prune.cli", "select", "--help"], capture_output=True, text=True,
                          check=True)
    assert "--ratio" in done.stdout and "Fraction of rows to REMOVE" in done.stdout


@pytest.mark.slow
def test_cli_compare_with_random(tmp_path, capsys):
    """`hf-prune compare` retrains on the pruned subset and on a random one from the run's own recipe and eval set."""
    run = tmp_path / "run"
    assert main(["train", "--task", "digits", "--output_dir", str(run), "--num_train_epochs", "2",
                 "--per_device_train_batch_size", "128", "--report_to", "none",
                 "--save_strategy", "no", "--use_cpu", "--quiet"]) == 0
    recipe = json.loads((run / "hf_prune_args.json").read_text())
    # the task's recipe (hf_prune.tasks.TASK_RECIPES), with the flag that overrides it
    assert recipe["learning_rate"] == 0.05 and recipe["optim"] == "sgd" and recipe["per_device_train_batch_size"] == 128
    capsys.readouterr()

    # The run has no eval set: the error says how to give one.
    assert main(["compare", "--run_dir", str(run), "--ratio", "0.5", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hf-prune compare: error: ") and "--eval_split" in err[0]

    out = tmp_path / "compare"
    assert main(["compare", "--run_dir", str(run), "--ratio", "0.5", "--seeds", "0", "--method", "el2n",
                 "--selector", "topk", "--class_quota", "proportional", "--eval_split", "test", "--output_dir", str(out),
                 "--quiet"]) == 0
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["ratio"] == 0.5 and saved["rows_kept"] == 674 and saved["seeds"] == [0]
    assert saved["method"] == "el2n + topk" and len(saved["pruned"]) == len(saved["random"]) == 1
    assert all(0.0 <= a <= 1.0 for a in saved["pruned"] + saved["random"])
    assert saved["difference"] == pytest.approx(saved["pruned"][0] - saved["random"][0])
    printed = capsys.readouterr()
    assert "hf-prune compare: ratio 0.5: 674 rows; pruned (el2n + topk)" in printed.out
    # A pruned subset worse than random still exits 0, but says so.
    assert ("trained worse than random" in printed.err) == (saved["difference"] < 0)
