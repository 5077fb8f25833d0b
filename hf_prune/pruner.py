"""`HFPruner`: the front door. Orchestration only: record -> scores -> selection -> pruned `datasets.Dataset`; each
step is another module's (`conversion`, `config`, `scores`, `selection`, `result`, `hub`, `evaluation`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from transformers import Trainer

from . import config, evaluation, hub, logging
from .conversion import resolve_sources, trainer_record
from .errors import InvalidArgumentError, RecordError
from .evaluation import RandomComparison
from .extrapolation import Extrapolation
from .result import PruneResult, record_summary
from .scores import ScoreFunction, ScoreOutput, ScoringContext, get_score
from .selection import SelectionConfig
from .selection.base import Selector
from .tracking.dataset import check_train_dataset
from .tracking.quality import RunQuality, check_learned, run_quality
from .tracking.record import TrainingRecord


logger = logging.get_logger(__name__)


class HFPruner:
    """Prune a training set with a score and a selector, from the record of a `PruneTrainer` run.

    Args:
        trainer (`PruneTrainer` or `transformers.Trainer`, *optional*): A `PruneTrainer` that has trained (its record
            is used) or not ([`prune`] trains it first), or a plain `transformers.Trainer`, converted into a
            `PruneTrainer` with the same arguments, data and callbacks that trains a *copy* of the model (or a fresh
            one from `model_init`); the caller's trainer and model are not modified.
        method (`str` or `ScoreFunction`, *optional*): The score; see `hf_prune.list_scores()`. With neither `method`
            nor `selector` (or with `method="default"`, which pins it by name), the library default: `dual` scores kept
            by `dual_beta` with its own defaults (see `hf_prune.config.DEFAULT_METHOD`). On a run whose first epoch
            is a few dozen steps from scratch the default can fall below random: compare the pruned subset with a
            random one before trusting it ([`compare_with_random`]).
        selector (`str` or `Selector`, *optional*): The selector (default for a given method: its own default,
            `topk` for scalar scores, `greedy` for influence vectors).
        record (`str` or `TrainingRecord`, *optional*): Prune from a saved record (with `dataset`), not a trainer.
        dataset (`datasets.Dataset`, *optional*): The training set the record was made from (with `record`).
        class_quota (`str`, *optional*): `"none"` or `"proportional"`; default per selector.
        min_per_class (`int`): Every class keeps at least this many rows.
        allow_empty_classes (`bool`): Accept a subset without some class.
        seed (`int`): Seed of scoring and selection randomness.
        extrapolate (`str`, *optional*): `"knn"` or `"gnn"`: train a fresh copy of the model on a seeded subset only
            and predict the other rows' scores (score extrapolation, arXiv 2506.09010), never on the full set.
        extrapolate_fraction (`float`): Share of rows in that subset (default 0.1).
        extrapolate_k (`int`): Neighbours of the kNN / GNN graph (default 10).
        **options: Options of the score or of the selector, routed to whichever accepts them (e.g. `epochs=3` for
            `dual`, `c_d=4` for `dual_beta`).

    Example:

    ```python
    >>> pruner = HFPruner(trainer)            # trainer: a PruneTrainer
    >>> pruned = pruner.prune(0.4)            # a datasets.Dataset with 60 % of the rows
    >>> pruned.column_names[-2:]
    ['source_index', 'score_dual']
    >>> pruner.scores()                       # every row, every computed score
    ```
    """

    def __init__(
        self, trainer: Trainer | None = None, method: str | ScoreFunction | None = None,
        selector: str | Selector | None = None, *, record: str | TrainingRecord | None = None, dataset=None,
        class_quota: str | None = None, min_per_class: int = 0, allow_empty_classes: bool = False, seed: int = 0,
        extrapolate: str | None = None, extrapolate_fraction: float = 0.1, extrapolate_k: int = 10, **options: Any,
    ):
        trainer, dataset = resolve_sources(trainer, record, dataset)
        self._setup(trainer, dataset, record, None, method, selector, options, class_quota=class_quota,
                    min_per_class=min_per_class, allow_empty_classes=allow_empty_classes, seed=seed)
        if extrapolate is not None:
            if self.trainer is None:
                raise InvalidArgumentError("`extrapolate` trains on a subset, so it needs a `trainer`, not a record.")
            self.extrapolation = Extrapolation(extrapolate, extrapolate_fraction, extrapolate_k)

    def _setup(self, trainer, dataset, record, source_result, method, selector, options, saved=({}, {}),
               **selection) -> None:
        """What every constructor sets: where rows and scores come from, the score and selector, empty caches."""
        self.trainer, self.dataset = trainer, dataset
        #: The result this pruner selects from again ([`from_result`], [`load`]); `None` for one that scores.
        self.source_result: PruneResult | None = source_result
        self._record = record if isinstance(record, TrainingRecord) else None
        self._record_path = None if record is None or isinstance(record, TrainingRecord) else str(record)
        self._record_run_id: str | None = None  # set by `from_checkpoints`: the run id of the record it wrote
        self.score, self.selector = config.resolve_method(method, selector, options, saved)
        self.config = SelectionConfig(method=self.score.name, selector=self.selector.name, **selection,
                                      score_options=self.score.options(), selector_options=self.selector.options())
        self.extrapolation: Extrapolation | None = None
        self.result: PruneResult | None = None
        self._outputs: dict[str, ScoreOutput] = {}
        self._output_options: dict[str, dict[str, Any]] = {}  # the score options each kept output was computed with
        self._timing: dict[str, float] = {}
        self._subset_record: TrainingRecord | None = None  # the seed subset's, under extrapolation
        self._quality: RunQuality | None = None

    @classmethod
    def from_checkpoints(cls, checkpoints, dataset, *, data_collator=None, label_column: str | None = None,
                         eval_dataset=None, learning_rates: list[float] | None = None, batch_size: int = 64,
                         head_module: str | None = None, output_dir: str | None = None, **options: Any) -> HFPruner:
        """A pruner scoring `dataset` with checkpoints you already have: forward passes only, no training.

        Writes a record with one epoch per checkpoint (see [`hf_prune.checkpoints.record_checkpoints`] for every
        argument) to `<output_dir>/prune_record` (default: a fresh directory under the hf_prune cache), then returns
        `HFPruner(record=..., dataset=dataset, **options)`. Scores that trace the optimizer (`sgd_influence`) refuse
        such a record; `tracin_cp` is TracIn-CP on the head.

        Example:

        ```python
        >>> pruner = HFPruner.from_checkpoints("out", train_ds, method="tracin_cp")   # out/checkpoint-*, by step
        >>> pruned = pruner.prune(0.3)
        ```
        """
        from .checkpoints import checkpoint_record_dir, record_checkpoints
        from .scores.base import check_reads_checkpoints

        record_dir = checkpoint_record_dir(output_dir)
        pruner = cls(record=str(record_dir), dataset=dataset, **options)  # options are checked before the passes
        check_reads_checkpoints(pruner.score)
        written = record_checkpoints(checkpoints, dataset, record_dir, data_collator=data_collator,
                                     label_column=label_column, eval_dataset=eval_dataset, learning_rates=learning_rates,
                                     batch_size=batch_size, head_module=head_module)
        pruner._record_run_id = written.meta.get("run_id")
        return pruner

    # ------------------------------------------------------------------ saving and loading
    @classmethod
    def from_result(cls, result: PruneResult, dataset=None, method: str | None = None, selector: str | None = None,
                    **options: Any) -> HFPruner:
        """A pruner that selects again from the scores of a [`PruneResult`]: any ratio or selector, without the model.

        Nothing is scored again: the selection reads the result's scores (and, for its own method, its influence
        vectors and auxiliary arrays), so `method` must be a score the result holds. [`load`] calls this.

        Args:
            result ([`PruneResult`]): A result of [`select`] (`pruner.result`) or of `PruneResult.load`.
            dataset (`datasets.Dataset`, *optional*): The training set the result selects from, checked to hold the
                same rows in the same order. Needed only by [`prune`] (which returns rows), not by [`select`].
            method (`str`, *optional*): Which of the result's scores to select with (default: the result's method);
                `"default"` selects with the default policy (the `dual` score must be among the result's).
            selector (`str`, *optional*): Selector (default: the result's, with its options, when `method` is the
                result's; else the method's default).
            **options: Selector options and the shared selection options (`class_quota`, `min_per_class`,
                `allow_empty_classes`, `seed`); by default the result's.

        Returns:
            [`HFPruner`]: a pruner without trainer or record, whose `source_result` is `result`.

        Example:

        ```python
        >>> result = HFPruner(trainer).select(0.3)
        >>> HFPruner.from_result(result, dataset=train_ds, selector="topk").prune(0.5)   # same scores, no training
        ```
        """
        if dataset is not None:
            check_train_dataset(dataset, "dataset")
            # The same rows in the same order: a shuffled or filtered dataset would get other rows' scores.
            result.check_dataset(dataset, check_columns=False)
        method, selector, selection, options, saved = config.options_from_result(result, method, selector, options)
        pruner = cls.__new__(cls)  # `__init__` takes a trainer or a record, and this pruner has neither
        pruner._setup(None, dataset, None, result, method, selector, options, saved=saved, **selection)
        pruner._outputs = result.score_outputs(pruner.score.name, pruner.selector)
        return pruner

    @classmethod
    def load(cls, path: str, dataset=None, method: str | None = None, selector: str | None = None,
             **options: Any) -> HFPruner:
        """A pruner from a saved result: select again at any ratio or with another selector, without the model.

        Args:
            path (`str`): Directory written by [`HFPruner.save`] or `PruneResult.save`.
            dataset (`datasets.Dataset`, *optional*): The training set; default: the copy saved with the result (if
                any). Needed only by [`prune`] (which returns rows), not by [`select`].
            method, selector, **options: As in [`from_result`]; by default the saved ones.

        Example:

        ```python
        >>> HFPruner(trainer).save("out/fmnist-scores")                 # once, after training
        >>> HFPruner.load("out/fmnist-scores").prune(0.7)               # later, anywhere: no model, no training
        ```
        """
        saved = PruneResult.load(path)
        dataset = dataset if dataset is not None else PruneResult.load_dataset(path)
        return cls.from_result(saved, dataset, method, selector, **options)

    def save(self, path: str, include_dataset: bool = True) -> str:
        """Save the scores (and vectors) with the last selection, for [`HFPruner.load`] and `hf-prune select`.

        Args:
            path (`str`): Output directory (replaced atomically if it holds an earlier result).
            include_dataset (`bool`): Also save the training set (`save_to_disk`) so the saved result can produce
                pruned datasets on its own.
        """
        if self.result is None:
            self.compute_score()
        result = self.result if self.result is not None else self._make_result()
        return hub.save_result(result, path, self.dataset if include_dataset else None)

    # ------------------------------------------------------------------ record and scores
    @property
    def record(self) -> TrainingRecord:
        """The training record; a `PruneTrainer` that has never trained (and has no record) is trained first.

        A trainer that has trained, or whose record directory exists, is never trained again behind the caller's back:
        a missing, unfinished or unreadable record is a [`RecordError`] naming the path and the fix.
        """
        if self._record is None:
            if self.trainer is None and self._record_path is None:
                raise RecordError(
                    "This pruner was made from a saved result (`HFPruner.load` / `from_result`): it holds the scores, "
                    "not the training record. For what needs the record (other scores, `score_epochs`), use "
                    "`HFPruner(trainer)` or `HFPruner(record='<output_dir>/prune_record', dataset=train_ds)`."
                )
            record = trainer_record(self.trainer) if self._record_path is None else TrainingRecord(self._record_path)
            expected = self._record_run_id
            if expected is not None and record.meta.get("run_id") != expected:
                raise RecordError(
                    f"The checkpoints' record at {self._record_path!r} was replaced after this pruner wrote it (another "
                    "`HFPruner.from_checkpoints` call with the same `output_dir`?), so it no longer holds this "
                    "pruner's checkpoints. Call `HFPruner.from_checkpoints` again, or give each call its own "
                    "`output_dir`."
                )
            record.check_dataset(self.dataset)
            self._record = record
        return self._record

    @property
    def labels(self) -> np.ndarray:
        """Label of every training row."""
        if self.source_result is not None:
            return np.asarray(self.source_result.labels)
        return np.asarray(self.trainer.prune_labels if self.extrapolation is not None else self.record.labels)

    def compute_score(self, method: str | ScoreFunction | None = None, **options: Any) -> ScoreOutput:
        """Compute (or return the cached) output of a score; the pruner's own method by default."""
        score = self.score if method is None else get_score(method, **options)
        # One output per score name is kept (the result's columns): the one computed with the options it was asked
        # with, and for the pruner's own score only its configured options (a one-off call with others is not kept).
        known = self._output_options.get(score.name, score.options())
        if score.name in self._outputs and known == score.options():
            return self._outputs[score.name]
        keep = score.name != self.score.name or score.options() == self.score.options()
        if self.source_result is not None:
            raise InvalidArgumentError(
                f"Score `{score.name}` is not in the saved result (it holds {sorted(self.source_result.scores)}); "
                "score it from a trainer or record instead."
            )
        if self.extrapolation is not None:
            start = time.perf_counter()
            output, self._subset_record = self.extrapolation.run(self.trainer, self.dataset, score, self.config.seed)
        else:
            if score.name != "random":
                check_learned(self.run_quality, score.name)
            context = ScoringContext(seed=self.config.seed, trainer=self.trainer,
                                     cache_dir=str(self.record.cache_dir("scores")))
            start = time.perf_counter()
            output = score(self.record, context)
        self._timing[f"score_{score.name}_seconds"] = time.perf_counter() - start
        if self.extrapolation is not None and score.name != "random":  # the subset's run is known only now
            check_learned(self.run_quality, score.name)
        if keep:
            self._outputs[score.name] = output
            self._output_options[score.name] = score.options()
        return output

    @property
    def run_quality(self) -> RunQuality | None:
        """How well the scoring run trained (final train loss and accuracy, eval accuracy when recorded), or `None`
        for a pruner loaded from a saved result."""
        if self._quality is None and self.source_result is None:
            self._quality = run_quality(self._scoring_record)
        return self._quality

    @property
    def _scoring_record(self) -> TrainingRecord:
        """The record of the run the scores came from (the seed subset's under extrapolation)."""
        return self._subset_record if self.extrapolation is not None and self._subset_record else self.record

    def scores(self, methods: list[str] | None = None):
        """The full score table (all rows) as a `datasets.Dataset`: `source_index`, `label`, `score_<name>` columns.

        Args:
            methods (`list[str]`, *optional*): Scores to (compute and) include; default: every score computed so far,
                and the pruner's method.
        """
        self.compute_score()
        for name in methods or []:
            self.compute_score(name)
        return self._make_result().scores_dataset(include_keep=False)

    # ------------------------------------------------------------------ selection
    def select(self, ratio: float | None = None, *, epsilon: float | None = None) -> PruneResult:
        """Choose the rows to keep and return a [`PruneResult`] (use [`prune`] for the pruned dataset itself).

        Args:
            ratio (`float`): Fraction of rows to **remove**, in (0, 1); exactly `n − round(ratio·n)` rows are kept.
            epsilon (`float`, *optional*): Instead of `ratio`, remove as many rows as possible while the norm of their
                summed influence stays within `epsilon` (vector selectors only).
        """
        budget = config.selection_budget(ratio, epsilon, len(self.labels))
        inputs = config.selection_inputs(self.config, self.labels, self.compute_score(), self.dataset)
        start = time.perf_counter()
        selection = self.selector(inputs, budget)
        self._timing["selection_seconds"] = time.perf_counter() - start
        self.result = self._make_result(selection.kept, budget.ratio, budget.epsilon, selection)
        logger.info(f"hf_prune: {self.result.summary()}")
        if checked := hub.self_check_sentence(self.result):
            logger.info(f"hf_prune: {checked}")
        return self.result

    def prune(self, ratio: float | None = None, *, epsilon: float | None = None, dataset=None):
        """Prune the training set: the kept rows as a `datasets.Dataset`.

        Args:
            ratio (`float`): Fraction of rows to **remove**, in (0, 1): `prune(0.4)` keeps exactly `n − round(0.4·n)`.
            epsilon (`float`, *optional*): Parameter-shift tolerance instead of a ratio (vector selectors only).
            dataset (`datasets.Dataset`, *optional*): Take the kept rows from this dataset instead of the training
                set: the same rows in the same order before tokenization or transforms (e.g. the raw text of a
                tokenized training set), so the pruned dataset holds text and images, not token ids. It is checked
                to be those rows (row count, labels, and the columns both share).

        Returns:
            `datasets.Dataset`: the kept rows in their original order with every original column, plus
            `source_index` (int64, the row's position in the training set) and `score_<name>` (float32) for every
            score computed. The caller's dataset is not modified. A column of `dataset` that is already named
            `score_<name>` is an error (rename it first), never silently replaced.
        """
        self.select(ratio, epsilon=epsilon)  # `ratio` is required here: no reuse of the last selection
        return self.result.to_dataset(self._export(None, None, dataset)[1])

    def save_to_disk(self, path: str, ratio: float | None = None, *, epsilon: float | None = None,
                     dataset=None) -> str:
        """Write the pruned dataset with `save_to_disk`, and its provenance card as `README.md` beside it.

        Args:
            path (`str`): Output directory (`datasets.load_from_disk(path)` reads the pruned rows back).
            ratio, epsilon, dataset: As in [`prune`]; without `ratio` or `epsilon`, the last selection is written.

        Returns:
            `str`: the path written.
        """
        return hub.save_pruned(*self._export(ratio, epsilon, dataset), path)

    def push_to_hub(self, repo_id: str, ratio: float | None = None, *, epsilon: float | None = None,
                    private: bool | None = None, token: str | None = None, allow_foreign_repo: bool = False,
                    commit_message: str | None = None, local_dir: str | None = None, dataset=None) -> str:
        """Select at `ratio` (or reuse the last selection) and push the pruned dataset, the `scores` config and a
        provenance card to a Hub dataset repo. See [`hf_prune.hub.push_to_hub`] for the arguments; `dataset` is the
        untokenized source to take the rows from (see [`prune`]), so a text dataset is published as text.

        Returns:
            `str`: the repo URL.
        """
        hub.check_repo_id(repo_id)
        result, rows = self._export(ratio, epsilon, dataset)
        return hub.push_to_hub(result, rows, repo_id, private=private, token=token,
                               allow_foreign_repo=allow_foreign_repo, commit_message=commit_message, local_dir=local_dir)

    def compare_with_random(self, ratio: float | None = None, *, eval_dataset=None, model_init=None,
                            seeds: tuple[int, ...] | list[int] = (0, 1, 2), args=None,
                            data_collator=None) -> RandomComparison:
        """Retrain a fresh model on the pruned subset and on random subsets of the same size, and compare accuracy.

        The check to run before trusting a pruned subset from a short run; the protocol is
        [`hf_prune.evaluation.compare_with_random`]'s. Neither the caller's datasets nor the trainer are modified.

        Args:
            ratio (`float`, *optional*): Fraction of rows to remove. Default: the ratio of the last [`select`] or
                [`prune`] call, whose subset is then reused; a new ratio is selected (and becomes `self.result`).
            eval_dataset (`datasets.Dataset`, *optional*): Held-out rows to test on; default the trainer's.
            model_init (`Callable[[], nn.Module]`, *optional*): Returns a fresh model as it was before training (for
                fine-tuning, the pretrained one); default the trainer's `model_init`.
            seeds (`Sequence[int]`): Training seeds (and random draws); more seeds, a smaller standard error.
            args (`TrainingArguments`, *optional*), data_collator (*optional*): Recipe and collator of the
                retraining runs; default the trainer's.

        Returns:
            [`RandomComparison`]: per-seed accuracies of both sides, their means, difference and standard error. A
            warning is logged when the pruned subset trains worse than random on average.
        """
        return evaluation.compare_with_random(self, ratio, eval_dataset=eval_dataset, model_init=model_init,
                                              seeds=seeds, args=args, data_collator=data_collator)

    def _export(self, ratio: float | None, epsilon: float | None, dataset=None) -> tuple[PruneResult, Any]:
        """The selection to export (a new one at `ratio` or `epsilon`, else the last) and the dataset of its rows."""
        if ratio is not None or epsilon is not None:
            self.select(ratio, epsilon=epsilon)
        elif self.result is None:
            raise InvalidArgumentError("Nothing selected yet: pass `ratio=` (the fraction of rows to remove).")
        if dataset is not None:
            check_train_dataset(dataset, "dataset")
        elif self.dataset is None:
            raise InvalidArgumentError("This pruner has no training set to take rows from (a saved result without its "
                                       "dataset). Pass it: `HFPruner.load(path, dataset=train_ds)` or `prune(ratio, "
                                       "dataset=train_ds)`; `select(ratio)` works without it.")
        return self.result, dataset if dataset is not None else self.dataset

    def _make_result(self, kept=None, ratio=None, epsilon=None, selection=None) -> PruneResult:
        """The result of a selection, or with `kept=None` every row with every score computed (the score table)."""
        kept = np.arange(len(self.labels)) if kept is None else kept
        if self.source_result is not None:
            summary, names = dict(self.source_result.record), self.source_result.class_names
            quality = (self.source_result.info or {}).get("run_quality")
        else:
            summary, names = record_summary(self._scoring_record, self.dataset, self.extrapolation is not None)
            quality = self.run_quality.to_dict() if self.run_quality is not None else None
        extrapolation = self.extrapolation.options() if self.extrapolation is not None else None
        if extrapolation is None and self.source_result is not None:  # a loaded result keeps saying how it was made
            extrapolation = (self.source_result.info or {}).get("extrapolation")
        if extrapolation is not None:
            made = (self._outputs[self.score.name].info.get("extrapolation") or {}) if self.score.name in \
                self._outputs else {}
            extrapolation = {**extrapolation, **{k: made[k] for k in ("seed_rows",) if k in made}}
        info = {"run_quality": quality, "score_info": {name: out.info for name, out in self._outputs.items()},
                "extrapolation": extrapolation,
                "timing": dict(self._timing)}
        return PruneResult.from_outputs(
            kept, self.labels, self._outputs, self.score.name, self.selector.name, selection, info=info, ratio=ratio,
            epsilon=epsilon, config=self.config.to_dict(), record=summary, class_names=names,
        )
