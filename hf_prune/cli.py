"""The `hf-prune` command: train (recording), select, push, report.

    hf-prune train  --task fashion_mnist --output_dir runs/fmnist --num_train_epochs 3
    hf-prune select --run_dir runs/fmnist --ratio 0.4 --output runs/fmnist/pruned-40
    hf-prune select --result runs/fmnist/pruned-40 --ratio 0.7 --selector greedy --output runs/fmnist/pruned-70
    hf-prune push   --result runs/fmnist/pruned-40 --repo_id username/fmnist-pruned-40
    hf-prune report --result runs/fmnist/pruned-40 --output runs/fmnist/report

Every subcommand takes its options as flags or from a file (`--config file.json|yaml`; flags win), parsed with
`transformers.HfArgumentParser`; `hf-prune <command> --help` lists them. `--quiet` hides progress bars and info logs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from . import logging as hf_prune_logging
from .errors import HfPruneError


COMMANDS = {
    "train": "Train a model with PruneTrainer on a built-in task, a Hub dataset or a local dataset, recording it.",
    "select": "Select a subset (ratio or epsilon, any method and selector) from a training run or a saved result.",
    "push": "Push a saved selection (pruned split + `scores` config + provenance card) to a Hub dataset repo.",
    "report": "Write a Markdown report with plots (score distributions, kept per class, accuracy against ratio).",
}


@dataclass
class TrainConfig:
    """What to train on (the rest of the flags are `PruneArguments`)."""

    task: str | None = field(default=None, metadata={
        "help": "Built-in offline task: `fashion_mnist` (small CNN), `rotten_tomatoes` (MiniLM) or `digits`."})
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
    per_class: int | None = field(default=None, metadata={"help": "Use a class-balanced subset of this many rows per class (fashion_mnist)."})
    train_rows: int | None = field(default=None, metadata={"help": "Use this many training rows (rotten_tomatoes)."})


@dataclass
class SelectConfig:
    run_dir: str | None = field(default=None, metadata={"help": "Output directory of `hf-prune train` (its record)."})
    result: str | None = field(default=None, metadata={"help": "Instead of --run_dir: a saved result to select again from."})
    ratio: float | None = field(default=None, metadata={"help": "Fraction of rows to REMOVE, in (0, 1)."})
    epsilon: float | None = field(default=None, metadata={"help": "Instead of --ratio: parameter-shift tolerance (vector selectors)."})
    method: str | None = field(default=None, metadata={"help": "Score (default: the library default or the saved one)."})
    selector: str | None = field(default=None, metadata={"help": "Selector (default per method, or the saved one)."})
    class_quota: str | None = field(default=None, metadata={"help": "`none` or `proportional`."})
    min_per_class: int | None = field(default=None, metadata={
        "help": "Every class keeps at least this many rows (default 0, or the saved value with --result)."})
    seed: int | None = field(default=None, metadata={"help": "Seed of scoring and selection (default 0, or the saved one)."})
    options: str | None = field(default=None, metadata={"help": 'Score/selector options as JSON, e.g. \'{"c_d": 4}\'.'})
    output: str = field(default="hf_prune_selection", metadata={"help": "Directory for the saved result and the pruned dataset."})


@dataclass
class PushConfig:
    result: str = field(default=None, metadata={"help": "A saved result (with its dataset) from `hf-prune select`."})
    repo_id: str = field(default=None, metadata={"help": "Dataset repo `namespace/name`."})
    ratio: float | None = field(default=None, metadata={"help": "Select again at this ratio before pushing."})
    private: bool = field(default=False, metadata={"help": "Create the repo as private."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: logged-in token or HF_TOKEN)."})
    allow_foreign_repo: bool = field(default=False, metadata={"help": "Allow pushing into a repo hf_prune did not create."})


@dataclass
class ReportConfig:
    result: str = field(default=None, metadata={"help": "A saved result from `hf-prune select`."})
    benchmark: list[str] = field(default_factory=list, metadata={"help": "Benchmark JSON files to plot (accuracy against ratio)."})
    output: str = field(default="hf_prune_report", metadata={"help": "Output directory for report.md and PNGs."})


def _parser(dataclasses: tuple, prog: str, description: str):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclasses, prog=prog, description=description)
    parser.add_argument("--config", default=None, help="JSON or YAML file with the options (flags override it).")
    parser.add_argument("--quiet", action="store_true", help="Hide progress bars and info messages.")
    return parser


def _parse(parser, argv: list[str]):
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            raise SystemExit(f"hf-prune: --config {path} does not exist.")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        parser.set_defaults(**values)
    outputs = parser.parse_args_into_dataclasses(argv, return_remaining_strings=False, look_for_args_file=False)
    # The extra flags (--config, --quiet) come back as a trailing argparse.Namespace.
    return [o for o in outputs if not isinstance(o, argparse.Namespace)]


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
    from .evaluation import compute_accuracy
    from .tasks import (
        load_digits_dataset,
        load_fashion_mnist,
        load_rotten_tomatoes,
        minilm_path,
        small_cnn,
    )

    collator, eval_ds = None, None
    if config.task == "fashion_mnist":
        train = load_fashion_mnist("train", per_class=config.per_class).with_format("torch")
        eval_ds = load_fashion_mnist("test", per_class=100).with_format("torch") if config.eval_split else None
        model = small_cnn()
    elif config.task == "digits":
        train = load_digits_dataset("train").with_format("torch")
        eval_ds = load_digits_dataset("test").with_format("torch") if config.eval_split else None
        model = small_cnn(image_size=8, conv_channels=(16, 32), hidden_size=64)
    elif config.task == "rotten_tomatoes" or config.text_column or config.dataset:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

        if config.task == "rotten_tomatoes":
            train = load_rotten_tomatoes("train", n=config.train_rows)
            eval_ds = load_rotten_tomatoes("test", n=500) if config.eval_split else None
            text_column = "text"
        else:
            train, eval_ds = _load_named(config)
            text_column = config.text_column
        if config.image_column and not text_column:
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            processor = AutoImageProcessor.from_pretrained(config.model)
            num_labels = train.features["label"].num_classes
            model = AutoModelForImageClassification.from_pretrained(config.model, num_labels=num_labels,
                                                                    ignore_mismatched_sizes=True)

            def transform(batch):
                out = processor([img.convert("RGB") for img in batch[config.image_column]], return_tensors="pt")
                out["labels"] = batch["label"]
                return out

            return train.with_transform(transform), (eval_ds.with_transform(transform) if eval_ds else None), \
                model, None, compute_accuracy
        if text_column is None:
            raise SystemExit("hf-prune train: give --text_column (text) or --image_column (images) for --dataset.")
        path = config.model or minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(path)
        num_labels = train.features["label"].num_classes if hasattr(train.features["label"], "num_classes") else \
            int(max(train["label"])) + 1

        def tokenize(batch):
            return tokenizer(batch[text_column], truncation=True, max_length=config.max_length)

        train = train.map(tokenize, batched=True)
        eval_ds = eval_ds.map(tokenize, batched=True) if eval_ds is not None else None
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
        collator = DataCollatorWithPadding(tokenizer)
    else:
        raise SystemExit("hf-prune train: give --task (fashion_mnist, rotten_tomatoes, digits) or --dataset.")
    return train, eval_ds, model, collator, compute_accuracy


def _load_named(config: TrainConfig):
    import datasets

    if Path(config.dataset).is_dir():
        loaded = datasets.load_from_disk(config.dataset)
        if isinstance(loaded, datasets.DatasetDict):
            train = loaded[config.train_split]
            eval_ds = loaded[config.eval_split] if config.eval_split else None
        else:
            train, eval_ds = loaded, None
        return train, eval_ds
    train = datasets.load_dataset(config.dataset, config.dataset_config, split=config.train_split)
    eval_ds = datasets.load_dataset(config.dataset, config.dataset_config, split=config.eval_split) \
        if config.eval_split else None
    return train, eval_ds


def cmd_train(argv: list[str]) -> int:
    from transformers import PrinterCallback

    from .config import PruneArguments
    from .trainer import PruneTrainer

    parser = _parser((TrainConfig, PruneArguments), "hf-prune train", COMMANDS["train"])
    config, args = _parse(parser, argv)
    train, eval_ds, model, collator, metrics = build_task(config)
    trainer = PruneTrainer(model=model, args=args, train_dataset=train, eval_dataset=eval_ds, data_collator=collator,
                           compute_metrics=metrics if eval_ds is not None else None)
    if "--quiet" in argv:
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model()
    Path(args.output_dir, "hf_prune_train.json").write_text(json.dumps(asdict(config), indent=1))
    print(f"hf-prune train: recorded {trainer.record.num_occurrences} sample-steps of {len(train)} rows in "
          f"{trainer.record_dir}")
    return 0


def _dataset_of_run(run_dir: str):
    saved = Path(run_dir) / "hf_prune_train.json"
    if not saved.is_file():
        raise SystemExit(f"hf-prune select: {run_dir} has no hf_prune_train.json; was it written by `hf-prune train`?")
    config = TrainConfig(**json.loads(saved.read_text()))
    train, *_ = build_task(config)
    return train


def cmd_select(argv: list[str]) -> int:
    from .pruner import HFPruner

    parser = _parser((SelectConfig,), "hf-prune select", COMMANDS["select"])
    (config,) = _parse(parser, argv)
    options: dict[str, Any] = json.loads(config.options) if config.options else {}
    shared = {"class_quota": config.class_quota, "min_per_class": config.min_per_class, "seed": config.seed}
    if config.result:
        pruner = HFPruner.load(config.result, method=config.method, selector=config.selector,
                               **{k: v for k, v in shared.items() if v is not None}, **options)
    elif config.run_dir:
        dataset = _dataset_of_run(config.run_dir)
        shared = {"class_quota": config.class_quota, "min_per_class": config.min_per_class or 0,
                  "seed": config.seed or 0}
        pruner = HFPruner(record=str(Path(config.run_dir) / "prune_record"), dataset=dataset, method=config.method,
                          selector=config.selector, **shared, **options)
    else:
        raise SystemExit("hf-prune select: give --run_dir (a training run) or --result (a saved selection).")
    result = pruner.select(config.ratio, epsilon=config.epsilon)
    result.save(config.output, dataset=pruner.dataset.with_format(None) if pruner.dataset is not None else None)
    if pruner.dataset is not None:
        result.to_dataset(pruner.dataset).save_to_disk(str(Path(config.output) / "pruned"))
    print(f"hf-prune select: {result.summary()}; saved to {config.output}")
    return 0


def cmd_push(argv: list[str]) -> int:
    from .pruner import HFPruner

    parser = _parser((PushConfig,), "hf-prune push", COMMANDS["push"])
    (config,) = _parse(parser, argv)
    if not config.result or not config.repo_id:
        raise SystemExit("hf-prune push: --result and --repo_id are required.")
    pruner = HFPruner.load(config.result)
    if config.ratio is None:
        pruner.result = pruner._saved
    url = pruner.push_to_hub(config.repo_id, config.ratio, private=config.private, token=config.token,
                             allow_foreign_repo=config.allow_foreign_repo)
    print(f"hf-prune push: {url}")
    return 0


def cmd_report(argv: list[str]) -> int:
    from .report import write_report
    from .result import PruneResult

    parser = _parser((ReportConfig,), "hf-prune report", COMMANDS["report"])
    (config,) = _parse(parser, argv)
    if not config.result:
        raise SystemExit("hf-prune report: --result is required.")
    path = write_report(PruneResult.load(config.result), config.output, config.benchmark)
    print(f"hf-prune report: {path}")
    return 0


HANDLERS = {"train": cmd_train, "select": cmd_select, "push": cmd_push, "report": cmd_report}


def usage() -> str:
    lines = [f"hf-prune {__version__}: dataset pruning for the Hugging Face stack", "", "usage: hf-prune <command> [options]",
             "", "commands:"]
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
    try:
        return HANDLERS[command](rest)
    except HfPruneError as err:
        print(f"hf-prune {command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
