"""Every user mistake on the `hf-prune` command line ends in one line on stderr naming the fix, never a traceback."""

from __future__ import annotations

import json
import re

import pytest

from hf_prune.cli import main


def run_and_read_error(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process; return its exit code and its one stderr line (asserting there is exactly one)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse-style exits are acceptable as long as they are short and non-zero
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return code, lines[0]


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ("not json", r"--options 'not json' is not valid JSON .*e\.g\. --options '\{\"c_d\": 4\}'"),
        ("[1, 2]", r"--options must be a JSON object .*got list .*e\.g\. --options '\{\"c_d\": 4\}'"),
        ('"c_d=4"', r"--options must be a JSON object .*got str"),
        ("4", r"--options must be a JSON object .*got int"),
    ],
)
def test_options_must_be_a_json_object(tmp_path, capsys, options, match):
    code, line = run_and_read_error(["select", "--result", str(tmp_path), "--ratio", "0.5", "--options", options],
                                    capsys)
    assert code == 1
    assert line.startswith("hf-prune select: error: ")
    assert re.search(match, line), line


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("bad.yaml", "ratio: [0.5\nmethod: dual\n", r"is not valid YAML at line 2, column 7: .*fix the syntax"),
        ("bad.yml", "ratio: 0.5\n  method: dual\n", r"is not valid YAML at line 2.*fix the syntax"),
        ("bad.json", '{"ratio": 0.5,}', r"is not valid JSON at line 1, column 15: .*fix the syntax"),
        ("list.yaml", "- ratio\n- 0.5\n", r"holds a list, not a mapping of options; .*e\.g\. `ratio: 0\.5`"),
        ("scalar.json", "0.5", r"holds a float, not a mapping"),
        ("typo.yaml", "ratio: 0.5\nselecter: topk\n", r"unknown option `selecter`; did you mean `selector`\?"),
        ("typo.json", '{"ration": 0.5}', r"unknown option `ration`; did you mean `ratio`\?"),
        ("method.yaml", "method: {a: 1}\n", r"`method` must be a string, got dict \{'a': 1\}"),
        ("ratio.yaml", "ratio: abc\n", r"`ratio` must be a number, got str 'abc'"),
        ("floor.yaml", "min_per_class: 1.5\n", r"`min_per_class` must be an integer, got float 1\.5"),
        ("seed.yaml", "seed: [1, 2]\n", r"`seed` must be an integer, got list"),
        ("output.yaml", "output_dir: null\n", r"`output_dir` must be set .*delete the key"),
    ],
)
def test_bad_config_file_is_one_line(tmp_path, capsys, name, text, match):
    path = write(tmp_path, name, text)
    code, line = run_and_read_error(["select", "--config", path], capsys)
    assert code == 1
    assert line.startswith(f"hf-prune select: error: --config {path}")
    assert re.search(match, line), line


def test_missing_config_file(tmp_path, capsys):
    code, line = run_and_read_error(["report", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 1 and "nope.yaml: no such file; give the path of a JSON or YAML file" in line


def test_unknown_config_key_of_train_names_the_file(tmp_path, capsys):
    path = write(tmp_path, "train.yaml", "task: digits\nnum_train_epoch: 2\n")
    code, line = run_and_read_error(["train", "--config", path], capsys)
    assert code == 1
    assert line == (f"hf-prune train: error: --config {path}: unknown option `num_train_epoch`; did you mean "
                    "`num_train_epochs`?")


def test_config_values_are_converted_like_flags(tmp_path):
    """YAML reads `1e-3` as a string and `no` as false; both mean what the same flag would."""
    from hf_prune.cli import TrainConfig, _parse, _parser
    from hf_prune.config import PruneArguments

    path = write(tmp_path, "train.yaml", "task: digits\nlearning_rate: 1e-3\nsave_strategy: no\nreport_to: [none]\n"
                 "lr_scheduler_kwargs: {power: 2}\nnum_train_epochs: 2\nuse_cpu: true\n"
                 f"output_dir: {tmp_path / 'run'}\n")
    config, args = _parse(_parser((TrainConfig, PruneArguments), "hf-prune train", ""), ["--config", path])
    assert config.task == "digits" and args.learning_rate == 1e-3 and args.num_train_epochs == 2
    assert args.save_strategy == "no" and args.report_to == [] and args.lr_scheduler_kwargs == {"power": 2}
    assert args.use_cpu is True


def test_options_mapping_in_config_and_deprecated_output_key(tmp_path, capsys):
    from hf_prune.cli import SelectConfig, _parse, _parser

    path = write(tmp_path, "select.yaml", "ratio: 0.5\noptions: {c_d: 4}\noutput: sel\n")
    (config,) = _parse(_parser((SelectConfig,), "hf-prune select", ""), ["--config", path])
    assert json.loads(config.options) == {"c_d": 4} and config.output_dir == "sel"
    assert "`output` in" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "match"),
    [
        (["select", "--ratio", "abc"], 2, r"argument --ratio: invalid float value: 'abc' \(see `hf-prune select --help`\)"),
        (["select", "--ratoi", "0.5"], 2, r"unknown argument\(s\) --ratoi 0\.5; did you mean --ratio\?"),
        (["compare", "--seeds", "a"], 2, r"argument --seeds: invalid int value: 'a'"),
        (["train", "--save_strategy", "sometimes"], 2,
         r"argument --save_strategy.*: invalid choice: 'sometimes' \(choose from 'no'"),
        (["select"], 1, r"give --run_dir \(a training run\) or --result"),
        (["report"], 1, r"--result is required"),
        (["push", "--result", "x"], 1, r"--result and --repo_id are required"),
        (["compare", "--ratio", "0.5"], 1, r"--run_dir is required: the --output_dir of a `hf-prune train` run"),
        (["compare", "--run_dir", "somewhere"], 1, r"--ratio is required: .*e\.g\. --ratio 0\.5"),
        (["compare", "--run_dir", "somewhere", "--ratio", "0.5"], 1,
         r"--run_dir somewhere has no hf_prune_train\.json; .*Give the --output_dir of a `hf-prune train` run"),
        (["select", "--run_dir", "somewhere", "--ratio", "0.5"], 1, r"has no hf_prune_train\.json"),
        (["train", "--task", "cifar"], 1, r"--task 'cifar' is not a built-in task; choose fashion_mnist"),
        (["train"], 1, r"give --task \(fashion_mnist, rotten_tomatoes, digits\) or --dataset"),
        (["train", "--task", "digits", "--dataset", "/no/such/dir"], 1, r"give --task .* or --dataset .*not both"),
        (["train", "--task", "digits", "--learning_rate", "-1"], 1, r"`learning_rate` must be a finite number of 0"),
        (["select", "--run_dir", "a", "--result", "b", "--ratio", "0.5"], 1, r"--run_dir .* or --result .*not both"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, code, match):
    monkeypatch.chdir(tmp_path)
    got, line = run_and_read_error(argv, capsys)
    assert got == code
    assert line.startswith(f"hf-prune {argv[0]}: error: ")
    assert re.search(match, line), line


@pytest.mark.parametrize("dataset", ["/nonexistent/dataset", "definitely-not/a-cached-dataset"])
def test_train_on_a_missing_dataset(tmp_path, capsys, dataset):
    code, line = run_and_read_error(["train", "--dataset", dataset, "--text_column", "text", "--output_dir",
                                     str(tmp_path / "run")], capsys)
    assert code == 1
    assert line.startswith(f"hf-prune train: error: --dataset {dataset!r} could not be loaded")
    assert "give a local `save_to_disk` directory that exists or a Hub dataset name" in line


def test_train_on_a_missing_split(tmp_path, capsys):
    import datasets

    path = tmp_path / "local"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})}).save_to_disk(
        str(path))
    code, line = run_and_read_error(["train", "--dataset", str(path), "--text_column", "text", "--eval_split",
                                     "validation", "--output_dir", str(tmp_path / "run")], capsys)
    assert code == 1
    assert "--eval_split 'validation' is not a split of --dataset" in line and "(splits: train)" in line


def test_library_errors_and_system_exit_are_prefixed(tmp_path, capsys, monkeypatch):
    import hf_prune.cli as cli

    code, line = run_and_read_error(["select", "--result", str(tmp_path / "missing"), "--ratio", "0.5"], capsys)
    assert code == 1 and line.startswith("hf-prune select: error: ") and "No saved hf_prune result" in line

    def legacy(argv):
        raise SystemExit("hf-prune report: something is wrong;\nfix it like this.")

    monkeypatch.setitem(cli.HANDLERS, "report", legacy)
    code, line = run_and_read_error(["report"], capsys)
    assert code == 1 and line == "hf-prune report: error: something is wrong; fix it like this."


def test_unknown_command_keeps_exit_code_2(capsys):
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.startswith("hf-prune: unknown command 'frobnicate'.")


def test_genuine_bugs_still_raise(monkeypatch):
    import hf_prune.cli as cli

    def broken(argv):
        raise KeyError("a bug")

    monkeypatch.setitem(cli.HANDLERS, "report", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["report"])


def test_a_built_in_task_has_only_a_test_split(tmp_path, capsys):
    # A mistyped --eval_split was taken for `test` (and written into the run's config as typed).
    code, line = run_and_read_error(["train", "--task", "digits", "--eval_split", "validatoin", "--output_dir",
                                     str(tmp_path / "run")], capsys)
    assert code == 1 and not (tmp_path / "run" / "prune_record").exists()
    assert "--eval_split 'validatoin': the built-in task 'digits' has one held-out split, `test`" in line


def test_report_names_a_bad_benchmark_file(tmp_path, capsys):
    bad_json, wrong_shape = tmp_path / "bad.json", tmp_path / "shape.json"
    bad_json.write_text("{not json")
    wrong_shape.write_text('{"foo": 1}')
    for path, message in ((tmp_path / "missing.json", "does not exist"), (bad_json, "is not readable JSON"),
                          (wrong_shape, "holds no benchmark rows")):
        code, line = run_and_read_error(["report", "--result", str(tmp_path / "result"), "--benchmark", str(path),
                                         "--output_dir", str(tmp_path / "report")], capsys)
        assert code == 1 and message in line and "scripts/benchmark.py" in line


def test_train_reads_a_labels_column_of_a_local_dataset(tmp_path):
    """`--dataset` whose label column is `labels` (the README accepts `label` or `labels`): the task is built from it
    (it failed with `KeyError: 'label'`)."""
    import datasets

    import hf_prune.cli as cli

    path = tmp_path / "local"
    train = datasets.Dataset.from_dict({"text": ["good", "bad", "fine", "awful"], "labels": [1, 0, 2, 0]})
    datasets.DatasetDict({"train": train}).save_to_disk(str(path))
    config = cli.TrainConfig(dataset=str(path), text_column="text")
    built, _, make_model, _, _ = cli._task(config)
    assert built["labels"] == [1, 0, 2, 0] and "input_ids" in built.column_names
    from hf_prune.tracking.dataset import num_classes

    assert num_classes(built, "labels") == 3


def test_an_output_dir_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    """`report` (and `compare`, before its retraining) refuse an `--output_dir` that is a file in one line (a raw
    `FileExistsError` traceback before, after `compare` had trained every model)."""
    import hf_prune.cli as cli

    taken = tmp_path / "taken"
    taken.write_text("mine")
    code, line = run_and_read_error(["report", "--result", str(tmp_path / "result"), "--output_dir", str(taken)],
                                    capsys)
    assert code == 1 and "--output_dir" in line and "is a file, not a directory" in line
    assert taken.read_text() == "mine"
    with pytest.raises(cli.CliError, match="is a file, not a directory"):
        cli._check_output_dir(taken)
    cli._check_output_dir(tmp_path)  # an existing directory is fine
