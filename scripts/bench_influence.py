"""Cost of tracking and of the SGD-Influence sweep, side by side with a plain `transformers.Trainer`.

    python scripts/bench_influence.py                  # vision (Fashion-MNIST CNN) and text (MiniLM), 3 repeats
    python scripts/bench_influence.py --tasks vision --repeats 5

For each task the same model, data and arguments are trained alternately with `transformers.Trainer` and with
`PruneTrainer` (`--repeats` times each, interleaved so that machine noise hits both); the overhead is the ratio of
median wall-clock times. The backward sweep is then timed on the last PruneTrainer record with the default options
(`sketch_size="auto"`) and with a 256-column sketch, relative to the training time of the traced window (all
epochs). Record size is the occurrence table's bytes per sample and epoch.

The last line is `tracking_overhead=<ratio> sweep_vs_train=<ratio> record_bytes_per_sample_epoch=<n>` (the worst
task for each number).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch
from transformers import PrinterCallback, Trainer, TrainingArguments
from transformers.utils import logging

from hf_prune import PruneArguments, PruneTrainer
from hf_prune.influence.sweep import SweepConfig, sgd_influence_sweep
from hf_prune.scores.influence import resolve_sketch


def vision_task(rows_per_class: int):
    from hf_prune.tasks import load_fashion_mnist, small_cnn

    train = load_fashion_mnist("train", per_class=rows_per_class).with_format("torch")
    kwargs = {"per_device_train_batch_size": 128, "learning_rate": 0.05, "optim": "sgd",
              "optim_args": "momentum=0.9", "weight_decay": 5e-4, "max_grad_norm": 0.0, "num_train_epochs": 2}
    return "vision", small_cnn, train, None, kwargs


def text_task(rows: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from hf_prune.tasks import load_rotten_tomatoes, minilm_path

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = load_rotten_tomatoes("train", n=rows).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=64), batched=True
    )

    def model_init():
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    kwargs = {"per_device_train_batch_size": 32, "learning_rate": 5e-5, "num_train_epochs": 1}
    return "text", model_init, train, DataCollatorWithPadding(tokenizer), kwargs


def run(trainer_cls, args_cls, model_init, train, collator, kwargs, out):
    torch.manual_seed(0)
    args = args_cls(output_dir=out, report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                    dataloader_pin_memory=False, seed=0, data_seed=0, **kwargs)
    trainer = trainer_cls(model=model_init(), args=args, train_dataset=train, data_collator=collator)
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, trainer


def directory_bytes(path: Path, prefix: str) -> int:
    return sum(f.stat().st_size for f in path.rglob(f"{prefix}*.bin"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["vision", "text"], choices=["vision", "text"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vision-per-class", type=int, default=1000)
    parser.add_argument("--text-rows", type=int, default=600)
    cli = parser.parse_args()
    logging.set_verbosity_error()
    datasets.disable_progress_bars()
    worst = {"overhead": 0.0, "sweep": 0.0, "bytes": 0.0}
    for name in cli.tasks:
        task = vision_task(cli.vision_per_class) if name == "vision" else text_task(cli.text_rows)
        label, model_init, train, collator, kwargs = task
        plain, tracked = [], []
        with tempfile.TemporaryDirectory() as tmp:
            trainer = None
            for _ in range(cli.repeats):
                plain.append(run(Trainer, TrainingArguments, model_init, train, collator, kwargs, tmp)[0])
                seconds, trainer = run(PruneTrainer, PruneArguments, model_init, train, collator, kwargs, tmp)
                tracked.append(seconds)
            overhead = statistics.median(tracked) / statistics.median(plain)
            record = trainer.record
            epochs = max(1, record.epochs_completed)
            size = directory_bytes(Path(record.path) / record.meta["table"]["directory"], "occ_")
            per_sample_epoch = size / (record.num_samples * epochs)
            train_seconds = statistics.median(tracked)
            auto_k = resolve_sketch("auto", record.num_samples, record.head_size)
            sweeps = {}
            for key, k in (("auto", auto_k), ("k256", 256)):
                start = time.perf_counter()
                sgd_influence_sweep(record, SweepConfig(sketch_size=k))
                sweeps[key] = time.perf_counter() - start
            print(
                f"{label}: rows={record.num_samples} epochs={epochs} head={record.head_size} | plain median "
                f"{statistics.median(plain):.2f}s {[round(s, 2) for s in plain]} | tracked median "
                f"{train_seconds:.2f}s {[round(s, 2) for s in tracked]} | overhead {overhead:.3f}x | sweep "
                f"auto({'exact' if auto_k is None else auto_k}) {sweeps['auto']:.2f}s = "
                f"{sweeps['auto'] / train_seconds:.3f}x train, k=256 {sweeps['k256']:.2f}s = "
                f"{sweeps['k256'] / train_seconds:.3f}x | record {per_sample_epoch:.0f} B/sample/epoch",
                flush=True,
            )
            worst["overhead"] = max(worst["overhead"], overhead)
            worst["sweep"] = max(worst["sweep"], sweeps["auto"] / train_seconds)
            worst["bytes"] = max(worst["bytes"], per_sample_epoch)
    print(
        f"tracking_overhead={worst['overhead']:.3f} sweep_vs_train={worst['sweep']:.3f} "
        f"record_bytes_per_sample_epoch={worst['bytes']:.0f}"
    )


if __name__ == "__main__":
    main()
