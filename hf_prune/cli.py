"""The `hf-prune` command: train (recording), select, compare, push, report.

    hf-prune train   --task fashion_mnist --output_dir runs/fmnist --num_train_epochs 3
    hf-prune select  --run_dir runs/fmnist --ratio 0.4 --output_dir runs/fmnist/pruned-40
    hf-prune select  --result runs/fmnist/pruned-40 --ratio 0.7 --selector topk --output_dir runs/fmnist/pruned-70
    hf-prune compare --run_dir runs/fmnist --ratio 0.4 --seeds 0 1 2 --output_dir runs/fmnist/compare-40
    hf-prune push    --result runs/fmnist/pruned-40 --repo_id username/fmnist-pruned-40
    hf-prune report  --result runs/fmnist/pruned-40 --output_dir runs/fmnist/report

Every subcommand takes its options as flags or from a file (`--config file.json|yaml`; flags win; a key no option of
the command knows is an error), parsed with `transformers.HfArgumentParser`; `hf-prune <command> --help` lists them.
`--quiet` hides progress bars and info logs. Every command that writes takes `--output_dir` (`--output` is a
deprecated alias). A mistake in the options ends in one line on stderr, `hf-prune <command>: error: ...`.
"""

from __future__ import annotations

import difflib
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import logging as hf_prune_logging
from .errors import HfPruneError
from .version import __version__


COMMANDS = {
    "train": "Train a model with PruneTrainer on a built-in task, a Hub dataset or a local dataset, recording it.",
    "select": "Select a subset (ratio or epsilon, any method and selector) from a training run or a saved result.",
    "compare": "Retrain on the selected subset and on random subsets of the same size, and compare test accuracy.",
    "push": "Push a saved selection (pruned split + `scores` config + provenance card) to a Hub dataset repo.",
    "report": "Write a Markdown report with plots (score distributions, kept per class, accuracy against ratio).",
}

_OPTIONS_EXAMPLE = """--options '{"c_d": 4}'"""


class CliError(Exception):
    """A mistake in the command line or the config file: printed as one line `hf-prune <command>: error: ...`."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class TrainConfig:
    """What to train on (the rest of the flags are `PruneArguments`)."""

    task: str | None = field(default=None, metadata={
        "help": "Built-in offline task: `fashion_mnist` (small CNN), `rotten_tomatoes` (MiniLM) or `digits`; each trains "
                "with its own recipe (hf_prune.tasks.TASK_RECIPES) unless a flag or --config sets the option."})
    dataset: str | None = field(default=None, metadata={
        "help": "Instead of --task: a Hub dataset name or a local `save_to_disk` directory."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config name of the Hub dataset."})
    train_split: str = field(default="train", metadata={"help": "Split to train on (and prune)."})
    eval_split: str | None = field(default=None, metadata={"help": "Optional evaluation split."})
    text_column: str | None = field(default=None, metadata={"help": "Text column (text classification)."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (image classification)."})
    model: str | None = field(default=None, metadata={
        "help": "Model name or path for AutoModelFor{Sequence,Image}Classification (default per task)."})
    max_length: int = field(default=64, metadata={"help": "Max tokens per text."})
    per_class: int | None = field(default=None, metadata={
        "help": "Use a class-balanced subset of this many rows per class (fashion_mnist)."})
    train_rows: int | None = field(default=None, metadata={"help": "Use this many training rows (rotten_tomatoes)."})


@dataclass
class SelectConfig:
    run_dir: str | None = field(default=None, metadata={"help": "Output directory of `hf-prune train` (its record)."})
    result: str | None = field(default=None, metadata={
        "help": "Instead of --run_dir: a saved result to select again from."})
    ratio: float | None = field(default=None, metadata={"help": "Fraction of rows to REMOVE, in (0, 1)."})
    epsilon: float | None = field(default=None, metadata={
        "help": "Instead of --ratio: parameter-shift tolerance (vector selectors)."})
    method: str | None = field(default=None, metadata={"help": "Score (default: the library default or the saved one)."})
    selector: str | None = field(default=None, metadata={"help": "Selector (default per method, or the saved one)."})
    class_quota: str | None = field(default=None, metadata={"help": "`none` or `proportional`."})
    min_per_class: int | None = field(default=None, metadata={
        "help": "Every class keeps at least this many rows (default 0, or the saved value with --result)."})
    seed: int | None = field(default=None, metadata={
        "help": "Seed of scoring and selection (default 0, or the saved one)."})
    options: str | None = field(default=None, metadata={
        "help": f"Score/selector options as a JSON object, e.g. {_OPTIONS_EXAMPLE} (a mapping in --config)."})
    output_dir: str = field(default="hf_prune_selection", metadata={
        "help": "Directory for the saved result (with a dataset card) and the pruned dataset (`<output_dir>/pruned`). "
                "`--output` is a deprecated alias."})


@dataclass
class CompareConfig:
    run_dir: str | None = field(default=None, metadata={"help": "Output directory of `hf-prune train` (its record)."})
    ratio: float | None = field(default=None, metadata={"help": "Fraction of rows to REMOVE, in (0, 1)."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={
        "help": "Training seeds; seed s retrains both the pruned subset and random subset s."})
    method: str | None = field(default=None, metadata={"help": "Score (default: the library default)."})
    selector: str | None = field(default=None, metadata={"help": "Selector (default per method)."})
    class_quota: str | None = field(default=None, metadata={"help": "`none` or `proportional`."})
    min_per_class: int = field(default=0, metadata={"help": "Every class keeps at least this many rows."})
    seed: int = field(default=0, metadata={"help": "Seed of scoring and selection of the pruned subset."})
    options: str | None = field(default=None, metadata={
        "help": f"Score/selector options as a JSON object, e.g. {_OPTIONS_EXAMPLE} (a mapping in --config)."})
    eval_split: str | None = field(default=None, metadata={
        "help": "Held-out split to test on when the run was trained without --eval_split (`test` for built-in tasks)."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Directory for comparison.json (default `<run_dir>/comparison`). `--output` is a deprecated alias."})


@dataclass
class PushConfig:
    result: str = field(default=None, metadata={"help": "A saved result (with its dataset) from `hf-prune select`."})
    repo_id: str = field(default=None, metadata={"help": "Dataset repo `namespace/name`."})
    ratio: float | None = field(default=None, metadata={"help": "Select again at this ratio before pushing."})
    private: bool = field(default=False, metadata={"help": "Create the repo as private."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: logged-in token or HF_TOKEN)."})
    allow_foreign_repo: bool = field(default=False, metadata={
        "help": "Allow pushing into a repo hf_prune did not create."})


@dataclass
class ReportConfig:
    result: str = field(default=None, metadata={"help": "A saved result from `hf-prune select`."})
    benchmark: list[str] = field(default_factory=list, metadata={
        "help": "Benchmark JSON files to plot (accuracy against ratio)."})
    output_dir: str = field(default="hf_prune_report", metadata={
        "help": "Output directory for report.md and PNGs. `--output` is a deprecated alias."})


def _one_line(text: Any) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _parser(dataclasses: tuple, prog: str, description: str):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclasses, prog=prog, description=description)
    parser.add_argument("--config", default=None, help="JSON or YAML file with the options (flags override it).")
    parser.add_argument("--quiet", action="store_true", help="Hide progress bars and info messages.")

    def error(message: str):
        # argparse would print the whole usage block and exit; one line that points to --help reads better.
        raise CliError(f"{message} (see `{prog} --help`)", exit_code=2)

    parser.error = error
    return parser


def _rename_output(argv: list[str], prog: str) -> list[str]:
    """`--output` was the name of `--output_dir` in select/report before 0.x: accept it with a warning."""
    renamed = []
    for token in argv:
        if token == "--output" or token.startswith("--output="):
            print(f"{prog}: warning: --output is deprecated, use --output_dir (same meaning).", file=sys.stderr)
            token = "--output_dir" + token[len("--output"):]
        renamed.append(token)
    return renamed


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CliError(f"--config {path}: no such file; give the path of a JSON or YAML file of options.")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"--config {path} cannot be read ({_one_line(err)}); give a readable JSON or YAML file.") from err
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or _one_line(err)
            raise CliError(f"--config {path} is not valid YAML{where}: {problem}; fix the syntax "
                           "(one `key: value` per line).") from err
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise CliError(f"--config {path} is not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}; "
                           "fix the syntax, or name the file .yaml for YAML.") from err
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CliError(f"--config {path} holds a {type(values).__name__}, not a mapping of options; write one "
                       "`option: value` per key, e.g. `ratio: 0.5`.")
    return values


def _option_actions(parser) -> dict[str, Any]:
    """The argparse action of every option, by its dataclass field name (the `--no_<x>` twins are skipped)."""
    import typing

    hints: dict[str, str] = {}
    for dataclass_type in parser.dataclass_types:
        hints.update({k: str(v) for k, v in typing.get_type_hints(dataclass_type).items()})
    actions: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest in ("help", "config", "quiet") or any(s.startswith("--no_") for s in action.option_strings):
            continue
        # Fields typed `dict | str` (e.g. lr_scheduler_kwargs) or `str | list[str]` (report_to) get a `str` flag,
        # but a config file may give the mapping or the list itself.
        action.hf_prune_hint = hints.get(action.dest, "")
        actions.setdefault(action.dest, action)
    return actions


def _config_value(key: str, value: Any, action, path: Path) -> Any:
    """`value` of `key` in a config file, converted to what the option's flag would give; a wrong type is an error."""
    from transformers.hf_argparser import string_to_bool

    def wrong(expected: str) -> CliError:
        return CliError(f"--config {path}: `{key}` must be {expected}, got {type(value).__name__} {value!r}.")

    if value is None:
        if action.default is None:
            return None
        raise wrong(f"set (default {action.default!r}); delete the key to keep the default")
    if action.nargs in ("+", "*"):
        values = value if isinstance(value, list) else [value]
        return [_config_value(key, item, _Scalar(action), path) for item in values]
    kind = action.type
    try:
        if kind is string_to_bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                return string_to_bool(value)
            raise wrong("true or false")
        if kind is int:
            if isinstance(value, bool) or isinstance(value, (dict, list)):
                raise wrong("an integer")
            if isinstance(value, float) and not value.is_integer():
                raise wrong("an integer")
            return int(value)
        if kind is float:
            if isinstance(value, (bool, dict, list)):
                raise wrong("a number")
            return float(value)  # YAML reads `1e-3` as a string
    except (TypeError, ValueError) as err:
        expected = "true or false" if kind is string_to_bool else "an integer" if kind is int else "a number"
        raise wrong(expected) from err
    if isinstance(value, (dict, list)):
        hint = getattr(action, "hf_prune_hint", "")
        if kind in (None, dict) or getattr(kind, "__origin__", None) is dict or "dict" in hint and isinstance(
                value, dict) or "list" in hint and isinstance(value, list):
            return value
        if isinstance(kind, type) and kind not in (str,) and not hasattr(kind, "__members__"):
            return value  # a structured config (e.g. `parallelism_config`): TrainingArguments checks it
        raise wrong("a string")
    if isinstance(value, bool) and action.choices and "no" in action.choices:
        value = "yes" if value else "no"  # YAML 1.1 reads `save_strategy: no` as false
    if not isinstance(value, str):
        value = str(value)  # a number where a name is expected, e.g. `dataset_config: 2020`
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise wrong(f"one of {choices}")
    if hasattr(kind, "__members__"):  # an Enum option such as `debug`
        try:
            kind(value)
        except ValueError as err:
            raise wrong("one of " + ", ".join(m.value for m in kind)) from err
    return value


class _Scalar:
    """One item of a list option (`nargs="+"`), checked like a scalar option of the same type."""

    def __init__(self, action):
        self.type, self.choices, self.nargs, self.default = action.type, action.choices, None, None


def _parse(parser, argv: list[str]):
    import argparse

    argv = _rename_output(argv, parser.prog)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config:
        path = Path(known.config)
        values = _read_config(path)
        actions = _option_actions(parser)
        if "output" in values and "output_dir" in actions:
            print(f"{parser.prog}: warning: `output` in {path} is deprecated, use `output_dir` (same meaning).",
                  file=sys.stderr)
            values["output_dir"] = values.pop("output")
        if isinstance(values.get("options"), dict) and "options" in actions:
            values["options"] = json.dumps(values["options"])
        for key, value in values.items():
            if key not in actions:
                close = difflib.get_close_matches(str(key), list(actions), n=1)
                hint = f"did you mean `{close[0]}`?" if close else f"see `{parser.prog} --help` for the options"
                raise CliError(f"--config {path}: unknown option `{key}`; {hint}")
            values[key] = _config_value(key, value, actions[key], path)
        parser.set_defaults(**values)
    try:
        *outputs, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True,
                                                                 look_for_args_file=False)
    except HfPruneError:
        raise
    except (ValueError, TypeError) as err:
        # TrainingArguments.__post_init__ checks how options combine (e.g. load_best_model_at_end + strategies).
        raise CliError(f"invalid options: {_one_line(err)}") from err
    if remaining:
        flag = next((token for token in remaining if token.startswith("-")), remaining[0])
        known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
        close = difflib.get_close_matches(flag.split("=")[0], known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"see `{parser.prog} --help` for the options"
        raise CliError(f"unknown argument(s) {' '.join(remaining)}; {hint}", exit_code=2)
    # The extra flags (--config, --quiet) come back as a trailing argparse.Namespace.
    return [o for o in outputs if not isinstance(o, argparse.Namespace)]


def _options(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliError(f"--options {text!r} is not valid JSON ({err.msg}, column {err.colno}); give a JSON object "
                       f"of score/selector options, e.g. {_OPTIONS_EXAMPLE}.") from err
    if not isinstance(options, dict):
        raise CliError(f"--options must be a JSON object of score/selector options, got {type(options).__name__} "
                       f"{text!r}; e.g. {_OPTIONS_EXAMPLE}.")
    return options


def _quiet(argv: list[str]) -> None:
    if "--quiet" in argv:
        hf_prune_logging.disable_progress_bars()
        hf_prune_logging.set_verbosity_error()
        import datasets
        from transformers.utils import logging as hf_logging

        datasets.disable_progress_bars()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def build_task(config: TrainConfig):
    """Datasets, model, collator and compute_metrics for a TrainConfig."""
    train, eval_ds, make_model, collator, metrics = _task(config)
    return train, eval_ds, make_model(), collator, metrics


def _task(config: TrainConfig):
    """As [`build_task`], with a function making a fresh (untrained) model instead of the model."""
    from .evaluation import compute_accuracy
    from .tasks import load_digits_dataset, load_fashion_mnist, load_rotten_tomatoes, small_cnn

    collator, eval_ds = None, None
    if config.task and config.dataset:
        raise CliError(f"give --task (a built-in task) or --dataset (your own data), not both (got --task "
                       f"{config.task!r} and --dataset {config.dataset!r}).")
    if config.task in ("fashion_mnist", "digits", "rotten_tomatoes") and config.eval_split not in (None, "", "test"):
        raise CliError(f"--eval_split {config.eval_split!r}: the built-in task {config.task!r} has one held-out "
                       "split, `test`; pass --eval_split test, or leave it out to train without an eval set.")
    if config.task == "fashion_mnist":
        train = load_fashion_mnist("train", per_class=config.per_class).with_format("torch")
        eval_ds = load_fashion_mnist("test", per_class=100).with_format("torch") if config.eval_split else None

        def make_model():
            return small_cnn()
    elif config.task == "digits":
        train = load_digits_dataset("train").with_format("torch")
        eval_ds = load_digits_dataset("test").with_format("torch") if config.eval_split else None

        def make_model():
            return small_cnn(image_size=8, conv_channels=(16, 32), hidden_size=64)
    elif config.task == "rotten_tomatoes" or config.text_column or config.dataset:
        if config.task == "rotten_tomatoes":
            train = load_rotten_tomatoes("train", n=config.train_rows)
            eval_ds = load_rotten_tomatoes("test", n=500) if config.eval_split else None
            text_column = "text"
        else:
            if not config.dataset:
                raise CliError("--text_column needs --dataset (a Hub dataset name or a local `save_to_disk` "
                               "directory), or use --task rotten_tomatoes.")
            train, eval_ds = _load_named(config)
            text_column = config.text_column
        if config.image_column and not text_column:
            return *_image_task(config, train, eval_ds), None, compute_accuracy
        train, eval_ds, make_model, collator = _text_task(config, train, eval_ds, text_column)
    elif config.task:
        raise CliError(f"--task {config.task!r} is not a built-in task; choose fashion_mnist, rotten_tomatoes or "
                       "digits, or give --dataset.")
    else:
        raise CliError("give --task (fashion_mnist, rotten_tomatoes, digits) or --dataset.")
    return train, eval_ds, make_model, collator, compute_accuracy


def _image_task(config: TrainConfig, train, eval_ds):
    """The image sets of --dataset transformed by the --model's image processor, and a function making the model."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    if not config.model:
        raise CliError("--image_column needs --model, an image classification checkpoint "
                       "(e.g. --model google/vit-base-patch16-224-in21k).")
    from .tracking.dataset import num_classes, resolve_label_column

    processor = AutoImageProcessor.from_pretrained(config.model)
    label = resolve_label_column(train, None)
    num_labels = num_classes(train, label)

    def make_model():
        return AutoModelForImageClassification.from_pretrained(config.model, num_labels=num_labels,
                                                               ignore_mismatched_sizes=True)

    def transform(batch):
        out = processor([img.convert("RGB") for img in batch[config.image_column]], return_tensors="pt")
        out["labels"] = batch[label]
        return out

    return train.with_transform(transform), (eval_ds.with_transform(transform) if eval_ds else None), make_model


def _text_task(config: TrainConfig, train, eval_ds, text_column: str | None):
    """The text sets tokenized by the --model's tokenizer (default MiniLM), a function making the model, and the
    padding collator."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from .tasks import minilm_path

    if text_column is None:
        raise CliError("give --text_column (text) or --image_column (images) for --dataset.")
    if text_column not in train.column_names:
        raise CliError(f"--text_column {text_column!r} is not a column of --dataset {config.dataset} "
                       f"(columns: {', '.join(train.column_names)}); pass one of them.")
    path = config.model or minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    from .tracking.dataset import num_classes, resolve_label_column

    num_labels = num_classes(train, resolve_label_column(train, None))

    def tokenize(batch):
        return tokenizer(batch[text_column], truncation=True, max_length=config.max_length)

    train = train.map(tokenize, batched=True)
    eval_ds = eval_ds.map(tokenize, batched=True) if eval_ds is not None else None

    def make_model():
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)

    return train, eval_ds, make_model, DataCollatorWithPadding(tokenizer)


def _load_named(config: TrainConfig):
    import datasets

    fix = ("give a local `save_to_disk` directory that exists or a Hub dataset name (with --dataset_config if it has "
           "configs; offline, only datasets already in the cache load)")
    try:
        if Path(config.dataset).is_dir():
            loaded = datasets.load_from_disk(config.dataset)
            if isinstance(loaded, datasets.DatasetDict):
                for split in (config.train_split, config.eval_split):
                    if split and split not in loaded:
                        flag = "--train_split" if split == config.train_split else "--eval_split"
                        raise CliError(f"{flag} {split!r} is not a split of --dataset {config.dataset} (splits: "
                                       f"{', '.join(loaded)}); pass one of them.")
                train = loaded[config.train_split]
                eval_ds = loaded[config.eval_split] if config.eval_split else None
            else:
                train, eval_ds = loaded, None
            return train, eval_ds
        train = datasets.load_dataset(config.dataset, config.dataset_config, split=config.train_split)
        eval_ds = datasets.load_dataset(config.dataset, config.dataset_config, split=config.eval_split) \
            if config.eval_split else None
    except (FileNotFoundError, OSError, ValueError, ConnectionError) as err:
        raise CliError(f"--dataset {config.dataset!r} could not be loaded ({type(err).__name__}: "
                       f"{_one_line(err)[:300]}); {fix}.") from err
    return train, eval_ds


def cmd_train(argv: list[str]) -> int:
    import argparse

    from transformers import PrinterCallback

    from .config import PruneArguments
    from .tasks import TASK_RECIPES
    from .trainer import PruneTrainer

    parser = _parser((TrainConfig, PruneArguments), "hf-prune train", COMMANDS["train"])
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=None)
    task, _ = pre.parse_known_args(argv)
    # A built-in task trains with its own recipe unless the config file or a flag sets an option (both override it).
    parser.set_defaults(**TASK_RECIPES.get(task.task, {}))
    config, args = _parse(parser, argv)
    train, eval_ds, model, collator, metrics = build_task(config)
    trainer = PruneTrainer(model=model, args=args, train_dataset=train, eval_dataset=eval_ds, data_collator=collator,
                           compute_metrics=metrics if eval_ds is not None else None)
    if "--quiet" in argv:
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model()
    Path(args.output_dir, "hf_prune_train.json").write_text(json.dumps(asdict(config), indent=1))
    # The recipe, so that `hf-prune compare` retrains under the same arguments (tokens are redacted by to_dict).
    Path(args.output_dir, "hf_prune_args.json").write_text(args.to_json_string())
    print(f"hf-prune train: recorded {trainer.record.num_occurrences} sample-steps of {len(train)} rows in "
          f"{trainer.record_dir}")
    return 0


def _read_run_file(run_dir: str, name: str, missing: str) -> tuple[Path, dict]:
    """The JSON mapping `hf-prune train` saved as `name` in `run_dir`, or a one-line error (`missing` says why the
    file may be absent and what to do)."""
    saved = Path(run_dir) / name
    if not saved.is_file():
        raise CliError(f"--run_dir {run_dir} has no {name}{missing}")
    try:
        values = json.loads(saved.read_text())
    except json.JSONDecodeError as err:
        raise CliError(f"{saved} is corrupted ({err.msg}); re-run `hf-prune train`.") from err
    if not isinstance(values, dict):
        raise CliError(f"{saved} is corrupted (it holds a {type(values).__name__}); re-run `hf-prune train`.")
    return saved, values


def _train_config_of_run(run_dir: str) -> TrainConfig:
    saved, values = _read_run_file(run_dir, "hf_prune_train.json", "; was it written by `hf-prune train`? Give the "
                                   "--output_dir of a `hf-prune train` run.")
    try:
        return TrainConfig(**{k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__})
    except (TypeError, AttributeError) as err:
        raise CliError(f"{saved} is corrupted ({_one_line(err)}); re-run `hf-prune train`.") from err


def _dataset_of_run(run_dir: str):
    train, *_ = _task(_train_config_of_run(run_dir))
    return train


def _pruner_of_run(config, dataset):
    from .pruner import HFPruner

    return HFPruner(record=str(Path(config.run_dir) / "prune_record"), dataset=dataset, method=config.method,
                    selector=config.selector, class_quota=config.class_quota,
                    min_per_class=config.min_per_class or 0, seed=config.seed or 0, **_options(config.options))


def cmd_select(argv: list[str]) -> int:
    from .hub import save_pruned, write_dataset_card
    from .pruner import HFPruner

    parser = _parser((SelectConfig,), "hf-prune select", COMMANDS["select"])
    (config,) = _parse(parser, argv)
    options = _options(config.options)
    shared = {"class_quota": config.class_quota, "min_per_class": config.min_per_class, "seed": config.seed}
    if config.result and config.run_dir:
        raise CliError("give --run_dir (a training run) or --result (a saved selection), not both.")
    if config.result:
        pruner = HFPruner.load(config.result, method=config.method, selector=config.selector,
                               **{k: v for k, v in shared.items() if v is not None}, **options)
    elif config.run_dir:
        pruner = _pruner_of_run(config, _dataset_of_run(config.run_dir))
    else:
        raise CliError("give --run_dir (a training run) or --result (a saved selection).")
    result = pruner.select(config.ratio, epsilon=config.epsilon)
    output_dir = Path(config.output_dir)
    source = pruner.dataset.with_format(None) if pruner.dataset is not None else None
    result.save(output_dir, dataset=source)
    write_dataset_card(str(output_dir), result, dataset=source)
    if pruner.dataset is not None:
        save_pruned(result, pruner.dataset, output_dir / "pruned")
    print(f"hf-prune select: {result.summary()}; saved to {output_dir}")
    return 0


def _recipe_of_run(run_dir: str, output_dir: Path):
    """The run's `PruneArguments` with saving, pushing and integrations off, writing under `output_dir`."""
    from .config import PruneArguments
    from .conversion import ISOLATED_ARGUMENTS

    saved, values = _read_run_file(run_dir, "hf_prune_args.json", " (the training arguments, written by `hf-prune "
                                   "train` since this version); re-run `hf-prune train` to make the run.")
    known = {f.name for f in fields(PruneArguments) if f.init}
    values = {k: v for k, v in values.items() if k in known and not k.endswith("_token")}
    values.update(ISOLATED_ARGUMENTS, output_dir=str(output_dir), record_dir=None)
    try:
        return PruneArguments(**values)
    except (TypeError, ValueError) as err:
        raise CliError(f"the training arguments in {saved} cannot be rebuilt ({_one_line(err)}); re-run "
                       "`hf-prune train` with this version.") from err


def _check_output_dir(path: Path) -> None:
    """Refuse an `--output_dir` that is an existing file (one line, before any work)."""
    if path.exists() and not path.is_dir():
        raise CliError(f"--output_dir {str(path)!r} is a file, not a directory: give a new or existing directory.")


def cmd_compare(argv: list[str]) -> int:
    parser = _parser((CompareConfig,), "hf-prune compare", COMMANDS["compare"])
    (config,) = _parse(parser, argv)
    if not config.run_dir:
        raise CliError("--run_dir is required: the --output_dir of a `hf-prune train` run.")
    if config.ratio is None:
        raise CliError("--ratio is required: the fraction of rows to remove, in (0, 1), e.g. --ratio 0.5.")
    _options(config.options)  # a bad --options fails before any data is loaded
    train_config = _train_config_of_run(config.run_dir)
    if config.eval_split:
        train_config.eval_split = config.eval_split
    elif not train_config.eval_split:
        raise CliError(f"the run in {config.run_dir} was trained without an eval set, and the comparison tests on "
                       "held-out rows: pass --eval_split (`test` for a built-in task, or a split of --dataset).")
    train, eval_ds, make_model, collator, _ = _task(train_config)
    if eval_ds is None:
        raise CliError(f"no eval set could be built for --eval_split {train_config.eval_split!r}; pass --eval_split "
                       "with a split of the run's dataset (a local directory saved as one split has none).")
    output_dir = Path(config.output_dir or Path(config.run_dir) / "comparison")
    _check_output_dir(output_dir)  # before the retraining, not after it
    recipe = _recipe_of_run(config.run_dir, Path(config.run_dir) / "compare_retrain")
    pruner = _pruner_of_run(config, train)
    comparison = pruner.compare_with_random(config.ratio, eval_dataset=eval_ds, model_init=make_model,
                                            seeds=config.seeds, args=recipe, data_collator=collator)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=1))
    print(f"hf-prune compare: {comparison.summary()}; saved to {output_dir / 'comparison.json'}")
    if comparison.difference < 0:
        print("hf-prune compare: warning: the pruned subset trained worse than random subsets of the same size; try "
              "another --method or --ratio, or train on a random subset.", file=sys.stderr)
    return 0


def cmd_push(argv: list[str]) -> int:
    from .pruner import HFPruner

    parser = _parser((PushConfig,), "hf-prune push", COMMANDS["push"])
    (config,) = _parse(parser, argv)
    if not config.result or not config.repo_id:
        raise CliError("--result and --repo_id are required.")
    pruner = HFPruner.load(config.result)
    if config.ratio is None:
        pruner.result = pruner.source_result  # push the saved selection as it is
    url = pruner.push_to_hub(config.repo_id, config.ratio, private=config.private, token=config.token,
                             allow_foreign_repo=config.allow_foreign_repo)
    print(f"hf-prune push: {url}")
    return 0


def _check_benchmark_file(path: str) -> None:
    """A `--benchmark` file must be a JSON object with a `rows` list, as `scripts/benchmark.py` writes."""
    fix = "pass a results/<task>.json written by scripts/benchmark.py"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CliError(f"--benchmark {path!r} does not exist; {fix}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CliError(f"--benchmark {path!r} is not readable JSON ({err}); {fix}.") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) and {"method", "ratio", "accuracy"} <= set(row)
                                             for row in rows):
        raise CliError(f"--benchmark {path!r} holds no benchmark rows (an object with a `rows` list of method / "
                       f"ratio / accuracy rows); {fix}.")


def cmd_report(argv: list[str]) -> int:
    from .report import write_report
    from .result import PruneResult

    parser = _parser((ReportConfig,), "hf-prune report", COMMANDS["report"])
    (config,) = _parse(parser, argv)
    if not config.result:
        raise CliError("--result is required: the --output_dir of `hf-prune select`.")
    for bench in config.benchmark:
        _check_benchmark_file(bench)
    if config.output_dir:
        _check_output_dir(Path(config.output_dir))
    path = write_report(PruneResult.load(config.result), config.output_dir, config.benchmark)
    print(f"hf-prune report: {path}")
    return 0


HANDLERS = {"train": cmd_train, "select": cmd_select, "compare": cmd_compare, "push": cmd_push, "report": cmd_report}


def usage() -> str:
    lines = [f"hf-prune {__version__}: dataset pruning for the Hugging Face stack", "",
             "usage: hf-prune <command> [options]", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += ["", "Run `hf-prune <command> --help` for the options of a command.", "", __doc__.split("\n\n")[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("--version", "version"):
        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"hf-prune: unknown command {command!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    _quiet(rest)
    prefix = f"hf-prune {command}: error: "
    try:
        return HANDLERS[command](rest)
    except CliError as err:
        print(prefix + _one_line(err), file=sys.stderr)
        return err.exit_code
    except HfPruneError as err:
        print(prefix + _one_line(err), file=sys.stderr)
        return 1
    except SystemExit as exit_:
        if not isinstance(exit_.code, str):
            raise  # --help (0) and argparse's own exits
        message = _one_line(exit_.code)
        for old in (f"hf-prune {command}: ", "hf-prune: "):
            message = message.removeprefix(old)
        print(prefix + message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
