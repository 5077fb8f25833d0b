"""`HFPruner`: the front door. Orchestration only: record -> scores -> selection -> pruned `datasets.Dataset`."""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np
from transformers import Trainer

from . import logging
from .config import to_prune_arguments
from .errors import InvalidArgumentError, RecordError
from .evaluation import RandomComparison, retrain_and_evaluate
from .extrapolation import Extrapolation
from .result import PruneResult
from .scores import ScoreFunction, ScoreOutput, ScoringContext, get_score
from .scores.base import score_class
from .selection import Budget, SelectionConfig, SelectionInputs, check_ratio, get_selector, keep_count
from .selection.base import Selector, accepted_options, selector_class
from .tracking.dataset import check_train_dataset, class_names, dataset_signature
from .tracking.quality import RunQuality, check_learned, run_quality
from .tracking.record import TrainingRecord
from .trainer import PruneTrainer, PruneTrainerMixin
from .validation import check_number, is_int


logger = logging.get_logger(__name__)

#: What `HFPruner(trainer)` uses when neither `method` nor `selector` is given: DUAL scores (arXiv 2502.06905) kept
#: by the `dual_beta` selector with its own defaults (ratio-adaptive Beta weights drawn systematically, the rows a
#: memorising run fit set aside, a class floor; see `DualBetaSelector`). How it was chosen and where it is weak:
#: docs/methods.md and benchmarks/README.md.
DEFAULT_METHOD = "dual"
DEFAULT_SELECTOR = "dual_beta"
#: The default policy is the selector's own defaults (kept for code that reads it; empty).
DEFAULT_SELECTOR_OPTIONS: dict[str, Any] = {}
#: The name that pins the default policy: `HFPruner(trainer, method="default")`.
DEFAULT_POLICY = "default"


def default_selector(score: ScoreFunction | type[ScoreFunction]) -> str:
    """The selector a method uses unless told otherwise: its own default, else vector methods optimise and scalar
    scores keep the top."""
    if score.default_selector:
        return score.default_selector
    return "greedy" if score.kind == "vector" else "topk"


#: `TrainingArguments` a converted plain `Trainer` never takes from the user's: it records into a directory of its own
#: and writes, pushes and reports nothing else (the user's checkpoints, Hub repo and experiment trackers stay untouched).
_ISOLATED_ARGUMENTS = {
    "save_strategy": "no",
    "push_to_hub": False,
    "hub_model_id": None,
    "hub_token": None,
    "report_to": [],
    "load_best_model_at_end": False,
    "resume_from_checkpoint": None,
    "eval_strategy": "no",
}


def convert_trainer(trainer: Trainer, output_dir: str | None = None) -> PruneTrainer:
    """A `PruneTrainer` that trains like `trainer` (same recipe, data, collator, metrics, callbacks), in isolation.

    The caller's trainer, model and files are never touched: the model is `trainer.model_init()` if the trainer has a
    `model_init`, else a deep copy of `trainer.model`; the run records into `output_dir` (default: a fresh directory
    under the hf_prune cache, see `hf_prune.cache`), never the user's `output_dir`; checkpoint saving, Hub pushes,
    evaluation during training and the user's `report_to` integrations are off. A copy of an already trained model
    records a run that starts from the trained weights (a warning says so): pass `model_init` to record a run from
    scratch.
    """
    from .cache import new_run_dir

    if trainer.model_init is not None:
        model = trainer.call_model_init()
    else:
        model = copy.deepcopy(trainer.model)
        if trainer.state.global_step > 0:
            logger.warning(
                "The plain Trainer given to HFPruner has already trained its model, but without a record. hf_prune "
                "trains a copy of that model again to record it, starting from the trained weights; give the Trainer a "
                "`model_init` to record a run from scratch."
            )
    run_dir = str(output_dir) if output_dir is not None else str(new_run_dir())
    args = to_prune_arguments(trainer.args, **_ISOLATED_ARGUMENTS, output_dir=run_dir)
    logger.warning(f"hf_prune: recording a copy of the plain Trainer's run in {run_dir} (your output_dir is not used).")
    collator = trainer.data_collator
    default_callbacks = {"DefaultFlowCallback", "ProgressCallback", "PrinterCallback"}
    callbacks = [
        cb for cb in trainer.callback_handler.callbacks
        if type(cb).__name__ not in default_callbacks and not type(cb).__module__.startswith("transformers.integrations")
    ]
    return PruneTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=trainer.train_dataset,
        eval_dataset=trainer.eval_dataset,
        processing_class=trainer.processing_class,
        compute_metrics=trainer.compute_metrics,
        callbacks=callbacks,
    )


class HFPruner:
    """Prune a training set with a score and a selector, from the record of a `PruneTrainer` run.

    Args:
        trainer (`PruneTrainer` or `transformers.Trainer`, *optional*):
            * a `PruneTrainer` that has trained: its record is used;
            * a `PruneTrainer` that has not: [`prune`] trains it first;
            * a plain `transformers.Trainer`: converted into a `PruneTrainer` with the same arguments, data and
              callbacks, training a *copy* of the model (or a fresh one from `model_init`); the caller's trainer and
              model are not modified.
        method (`str` or `ScoreFunction`, *optional*): The score; see `hf_prune.list_scores()`. With neither `method`
            nor `selector` (or with `method="default"`, which pins it by name), the library default: `dual` scores kept
            by `dual_beta` with its own defaults (`sampling="systematic"`, `inclusion="successive"`,
            `hard_cutoff="regime"`, `cutoff_scale="ratio"`, `class_floor=0.5`; see `DualBetaSelector`).
            The regime switch reads the memorisation gap from the first epoch; when that epoch is a few dozen steps
            of a model trained from scratch the gap is overestimated and the default can fall below random (benchmarks/README.md,
            "Digits"): on such runs compare the pruned subset with a random one before trusting it
            ([`compare_with_random`]).
        selector (`str` or `Selector`, *optional*): The selector (default for a given method: its own default,
            `topk` for scalar scores, `greedy` for influence vectors).
        record (`str` or `TrainingRecord`, *optional*): Prune from a saved record instead of a trainer; give `dataset`
            too.
        dataset (`datasets.Dataset`, *optional*): The training set the record was made from (with `record`).
        class_quota (`str`, *optional*): `"none"` or `"proportional"`; default per selector.
        min_per_class (`int`): Every class keeps at least this many rows.
        allow_empty_classes (`bool`): Accept a subset without some class.
        seed (`int`): Seed of scoring and selection randomness.
        extrapolate (`str`, *optional*): `"knn"` or `"gnn"`: train a fresh copy of the model on a seeded subset only,
            score it there, and predict the other rows' scores (score extrapolation, arXiv 2506.09010). The full
            training set is never trained on.
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
        self,
        trainer: Trainer | None = None,
        method: str | ScoreFunction | None = None,
        selector: str | Selector | None = None,
        *,
        record: str | TrainingRecord | None = None,
        dataset=None,
        class_quota: str | None = None,
        min_per_class: int = 0,
        allow_empty_classes: bool = False,
        seed: int = 0,
        extrapolate: str | None = None,
        extrapolate_fraction: float = 0.1,
        extrapolate_k: int = 10,
        **options: Any,
    ):
        if trainer is not None and not isinstance(trainer, Trainer):
            raise InvalidArgumentError(
                f"`trainer` must be a transformers.Trainer (ideally a PruneTrainer), got {type(trainer).__name__}. To "
                "prune from a saved record use `HFPruner(record='out/prune_record', dataset=train_ds)`."
            )
        saved = options.pop("_saved", None)
        if trainer is None and record is None and saved is None:
            raise InvalidArgumentError(
                "HFPruner needs a `trainer`, a `record` (with its `dataset`), or a saved result (`HFPruner.load`)."
            )
        if trainer is not None and not isinstance(trainer, PruneTrainerMixin):
            trainer = convert_trainer(trainer)
        self.trainer = trainer
        if record is not None:
            if dataset is None:
                raise InvalidArgumentError("`record=` needs the training set it was made from: pass `dataset=`.")
            check_train_dataset(dataset, "dataset")
        self.dataset = dataset if dataset is not None else getattr(trainer, "source_dataset", None)
        if self.dataset is None and saved is None:
            raise InvalidArgumentError("The trainer has no `train_dataset`; there is nothing to prune.")
        self._saved: PruneResult | None = saved
        self._record = record if isinstance(record, TrainingRecord) else None
        self._record_path = None if record is None or isinstance(record, TrainingRecord) else str(record)

        if method == DEFAULT_POLICY:
            if selector not in (None, DEFAULT_SELECTOR):
                raise InvalidArgumentError(
                    f"`method={DEFAULT_POLICY!r}` is the library's default policy (the `{DEFAULT_METHOD}` score with "
                    f"the `{DEFAULT_SELECTOR}` selector); it takes no other `selector` (got {selector!r}). Pass "
                    f"`method={DEFAULT_METHOD!r}, selector={selector!r}` instead."
                )
            method = None
        if method is None and selector is None:
            method, selector = DEFAULT_METHOD, DEFAULT_SELECTOR
            options = {**DEFAULT_SELECTOR_OPTIONS, **options}
        method = method if method is not None else DEFAULT_METHOD
        score_cls = type(method) if isinstance(method, ScoreFunction) else score_class(method)
        score_options, selector_options = self._route_options(score_cls, selector, options)
        self.score = method if isinstance(method, ScoreFunction) else get_score(method, **score_options)
        selector_name = selector.name if isinstance(selector, Selector) else (selector or default_selector(self.score))
        self.selector = selector if isinstance(selector, Selector) else get_selector(selector_name, **selector_options)
        self._check_compatible(self.score, self.selector)
        self.config = SelectionConfig(
            method=self.score.name,
            selector=self.selector.name,
            class_quota=class_quota,
            min_per_class=min_per_class,
            allow_empty_classes=allow_empty_classes,
            seed=seed,
            score_options=self.score.options(),
            selector_options=self.selector.options(),
        )
        self.extrapolation = None
        if extrapolate is not None:
            if self.trainer is None:
                raise InvalidArgumentError("`extrapolate` trains on a subset, so it needs a `trainer`, not a record.")
            self.extrapolation = Extrapolation(extrapolate, extrapolate_fraction, extrapolate_k)
        self._subset_record: TrainingRecord | None = None
        self._quality: RunQuality | None = None
        self._outputs: dict[str, ScoreOutput] = {}
        self._timing: dict[str, float] = {}
        self.result: PruneResult | None = None
        if saved is not None:
            self._restore(saved)

    @classmethod
    def from_checkpoints(
        cls, checkpoints, dataset, *, data_collator=None, label_column: str | None = None, eval_dataset=None,
        learning_rates: list[float] | None = None, batch_size: int = 64, head_module: str | None = None,
        output_dir: str | None = None, **options: Any,
    ) -> HFPruner:
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
        record_checkpoints(checkpoints, dataset, record_dir, data_collator=data_collator, label_column=label_column,
                           eval_dataset=eval_dataset, learning_rates=learning_rates, batch_size=batch_size,
                           head_module=head_module)
        return pruner

    # ------------------------------------------------------------------ saving and loading
    def _restore(self, saved: PruneResult) -> None:
        """Scores, vectors and auxiliary arrays from a saved result (no record, no model)."""
        if self.score.name not in saved.scores:
            raise InvalidArgumentError(
                f"The saved result holds the scores {sorted(saved.scores)}; `method={self.score.name!r}` was not "
                "computed when it was saved. Pick one of those, or score again from the trainer or record."
            )
        for name, values in saved.scores.items():
            self._outputs[name] = ScoreOutput(values=np.asarray(values, dtype=np.float64))
        main = self._outputs[self.score.name]
        if saved.method == self.score.name:
            main.vectors, main.aux = saved.vectors, dict(saved.aux)
            main.info = saved.info.get("score_info", {}).get(saved.method, {})
        if self.selector.needs == "vector" and main.vectors is None:
            raise InvalidArgumentError(
                f"Selector `{self.selector.name}` needs the influence vectors of `{self.score.name}`, which this saved "
                "result does not hold."
            )
        if self.dataset is not None and len(self.dataset) != saved.num_samples:
            raise InvalidArgumentError(
                f"`dataset` has {len(self.dataset)} rows but the saved result was made from {saved.num_samples}."
            )

    @classmethod
    def load(cls, path: str, dataset=None, method: str | None = None, selector: str | None = None,
             **options: Any) -> HFPruner:
        """A pruner from a saved result: select again at any ratio or with another selector, without the model.

        Args:
            path (`str`): Directory written by [`HFPruner.save`] or `PruneResult.save`.
            dataset (`datasets.Dataset`, *optional*): The training set; default: the copy saved with the result (if
                any). Needed only by [`prune`] (which returns rows), not by [`select`].
            method (`str`, *optional*): Which saved score to select with (default: the saved method).
            selector (`str`, *optional*): Selector (default: the saved one, with its saved options).
            **options: Selector options and the shared selection options (`class_quota`, `min_per_class`, `seed`,
                ...); by default the saved ones.

        Example:

        ```python
        >>> HFPruner(trainer).save("out/fmnist-scores")                 # once, after training
        >>> HFPruner.load("out/fmnist-scores").prune(0.7)               # later, anywhere: no model, no training
        ```
        """
        saved = PruneResult.load(path)
        if dataset is None:
            dataset = PruneResult.load_dataset(path)
        if dataset is not None:
            check_train_dataset(dataset, "dataset")
            # The same rows in the same order (row count, label hash, sampled content): a shuffled or filtered
            # dataset would get other rows' scores.
            saved.check_dataset(dataset, check_columns=False)
        method = method or saved.method
        config = dict(saved.config or {})
        if selector is None and method == saved.method:
            selector = saved.selector
        same_selector = selector == saved.selector
        shared = {key: options.pop(key, config.get(key)) for key in ("class_quota", "min_per_class",
                                                                     "allow_empty_classes", "seed")}
        shared = {k: v for k, v in shared.items() if v is not None}
        selector_options = dict(config.get("selector_options", {})) if same_selector else {}
        selector_cls = selector_class(selector or default_selector(score_class(method)))
        selector_options = {k: v for k, v in selector_options.items() if k in accepted_options(selector_cls)}
        selector_options.update(options)
        score_options = dict(config.get("score_options", {})) if method == saved.method else {}
        score_options = {k: v for k, v in score_options.items() if k in accepted_options(score_class(method))}
        pruner = cls.__new__(cls)
        pruner.__init__(None, method, selector, dataset=dataset, _saved=saved, **shared,
                        **score_options, **selector_options)
        return pruner

    def save(self, path: str, include_dataset: bool = True) -> str:
        """Save the scores (and vectors) with the last selection, for [`HFPruner.load`] and `hf-prune select`.

        Args:
            path (`str`): Output directory (replaced atomically if it holds an earlier result).
            include_dataset (`bool`): Also save the training set (`save_to_disk`) so the saved result can produce
                pruned datasets on its own.
        """
        from .hub import write_dataset_card

        result = self.result
        if result is None:
            self.compute_score()
            result = self._make_result(np.arange(len(self.labels)), ratio=None, epsilon=None, selection=None)
        dataset = self.dataset if include_dataset else None
        if dataset is not None and dataset.format.get("type") == "custom":
            dataset = dataset.with_format(None)
        saved = result.save(path, dataset=dataset)
        write_dataset_card(saved, result)
        return saved

    # ------------------------------------------------------------------ options
    @staticmethod
    def _route_options(score_cls, selector, options: dict[str, Any]) -> tuple[dict, dict]:
        if isinstance(selector, Selector):
            selector_cls = type(selector)
        else:
            selector_cls = selector_class(selector if selector is not None else default_selector(score_cls))
        score_accepts = accepted_options(score_cls)
        selector_accepts = accepted_options(selector_cls) if selector_cls is not None else set()
        score_options, selector_options = {}, {}
        for key, value in options.items():
            routed = False
            if key in score_accepts:
                score_options[key] = value
                routed = True
            if key in selector_accepts:
                selector_options[key] = value
                routed = True
            if not routed:
                raise InvalidArgumentError(
                    f"Unknown option `{key}`: score `{score_cls.name}` accepts {sorted(score_accepts) or 'no options'} "
                    f"and selector `{getattr(selector_cls, 'name', selector)}` accepts "
                    f"{sorted(selector_accepts) or 'no options'}."
                )
        return score_options, selector_options

    @staticmethod
    def _check_compatible(score: ScoreFunction, selector: Selector) -> None:
        if selector.needs == "vector" and score.kind != "vector":
            raise InvalidArgumentError(
                f"Selector `{selector.name}` optimises over per-sample influence vectors, but score `{score.name}` is a "
                "scalar score. Use a vector method (`sgd_influence`, `influence_function`) or a scalar selector "
                "(`topk`, `ccs`, `moderate`, `dual_beta`, `random`)."
            )

    # ------------------------------------------------------------------ record
    @property
    def record(self) -> TrainingRecord:
        """The training record; a `PruneTrainer` that has never trained (and has no record) is trained first.

        A trainer that has trained, or whose record directory exists, is never trained again behind the caller's back:
        a missing, unfinished or unreadable record is a [`RecordError`] naming the path and the fix.
        """
        if self._record is None:
            if self._record_path is not None:
                record = TrainingRecord(self._record_path)
            else:
                record = self._trainer_record()
            record.check_dataset(self.dataset)
            self._record = record
        return self._record

    def _trainer_record(self) -> TrainingRecord:
        trainer = self.trainer
        path = trainer.record_dir
        if trainer.state.global_step == 0 and not os.path.exists(path):
            logger.warning(f"hf_prune: the trainer has not trained yet; training it now to record {path}.")
            trainer.train()
            return trainer.record
        try:
            return TrainingRecord(path)
        except RecordError as err:
            raise RecordError(
                f"{err} HFPruner does not re-train on its own: to record the run again, call `trainer.train()` "
                f"yourself (it replaces the record at {path!r}), or point `PruneArguments(record_dir=...)` at the "
                "record of this run."
            ) from err

    # ------------------------------------------------------------------ scores
    def compute_score(self, method: str | ScoreFunction | None = None, **options: Any) -> ScoreOutput:
        """Compute (or return the cached) output of a score; the pruner's own method by default."""
        score = self.score if method is None else get_score(method, **options)
        if score.name in self._outputs and (method is None or not options):
            return self._outputs[score.name]
        if self._saved is not None:
            raise InvalidArgumentError(
                f"Score `{score.name}` is not in the saved result (it holds {sorted(self._saved.scores)}); score it "
                "from a trainer or record instead."
            )
        if self.extrapolation is not None:
            start = time.perf_counter()
            output, self._subset_record = self.extrapolation.run(self.trainer, self.dataset, score, self.config.seed)
            self._timing[f"score_{score.name}_seconds"] = time.perf_counter() - start
            if score.name != "random":
                check_learned(self.run_quality, score.name)
            self._outputs[score.name] = output
            return output
        record = self.record
        if score.name != "random":
            check_learned(self.run_quality, score.name)
        context = ScoringContext(seed=self.config.seed, trainer=self.trainer, cache_dir=str(record.cache_dir("scores")))
        start = time.perf_counter()
        output = score(record, context)
        self._timing[f"score_{score.name}_seconds"] = time.perf_counter() - start
        self._outputs[score.name] = output
        return output

    @property
    def run_quality(self) -> RunQuality | None:
        """How well the scoring run trained (final train loss and accuracy, eval accuracy when recorded), or `None`
        for a pruner loaded from a saved result."""
        if self._quality is None and self._saved is None:
            self._quality = run_quality(self._meta_record)
        return self._quality

    def scores(self, methods: list[str] | None = None):
        """The full score table (all rows) as a `datasets.Dataset`: `source_index`, `label`, `score_<name>` columns.

        Args:
            methods (`list[str]`, *optional*): Scores to (compute and) include; default: every score computed so far,
                and the pruner's method.
        """
        self.compute_score()
        for name in methods or []:
            self.compute_score(name)
        result = self._make_result(np.arange(len(self.labels)), ratio=None, epsilon=None, selection=None)
        return result.scores_dataset(include_keep=False)

    # ------------------------------------------------------------------ selection
    def select(self, ratio: float | None = None, *, epsilon: float | None = None) -> PruneResult:
        """Choose the rows to keep and return a [`PruneResult`] (use [`prune`] for the pruned dataset itself).

        Args:
            ratio (`float`): Fraction of rows to **remove**, in (0, 1); exactly `n − round(ratio·n)` rows are kept.
            epsilon (`float`, *optional*): Instead of `ratio`, remove as many rows as possible while the norm of their
                summed influence stays within `epsilon` (vector selectors only).
        """
        n = len(self.labels)
        if ratio is not None and epsilon is not None:
            raise InvalidArgumentError(
                f"Give either `ratio` ({ratio}) or `epsilon` ({epsilon}), not both: `ratio` fixes how many rows are "
                "removed, `epsilon` bounds their summed influence and lets the solver choose how many."
            )
        if ratio is None and epsilon is None:
            raise InvalidArgumentError(
                "`ratio` is required: the fraction of rows to remove, in (0, 1) (e.g. `prune(0.4)` keeps 60 %)."
            )
        budget = Budget()
        if ratio is not None:
            ratio = check_ratio(ratio, n)
            budget.n_keep = keep_count(ratio, n)
            budget.ratio = ratio
        else:
            budget.epsilon = check_number("epsilon", epsilon, 0, low_open=True, finite=True)
        output = self.compute_score()
        inputs = SelectionInputs(
            labels=self.labels,
            scores=output.values,
            vectors=output.vectors,
            aux=output.aux,
            seed=self.config.seed,
            class_quota=self.config.class_quota,
            min_per_class=self.config.min_per_class,
            allow_empty_classes=self.config.allow_empty_classes,
            num_classes=int(self.labels.max()) + 1,
            dataset=self.dataset,
            aux_info={"self_check": output.info.get("self_check")} if output.info.get("self_check") else {},
        )
        start = time.perf_counter()
        selection = self.selector(inputs, budget)
        self._timing["selection_seconds"] = time.perf_counter() - start
        self.result = self._make_result(selection.kept, ratio=ratio, epsilon=budget.epsilon, selection=selection)
        logger.info(f"hf_prune: {self.result.summary()}")
        from .hub import self_check_sentence

        if checked := self_check_sentence(self.result):
            logger.info(f"hf_prune: {checked}")
        return self.result

    def prune(self, ratio: float | None = None, *, epsilon: float | None = None, dataset=None):
        """Prune the training set: the kept rows as a `datasets.Dataset`.

        Args:
            ratio (`float`): Fraction of rows to **remove**, in (0, 1). `prune(0.4)` keeps exactly
                `n − round(0.4·n)` rows.
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
        result = self.select(ratio, epsilon=epsilon)
        return result.to_dataset(self._rows_source(dataset))

    def _rows_source(self, dataset=None):
        """The dataset kept rows are taken from: `dataset` (checked in `PruneResult.to_dataset`) or the training set."""
        if dataset is not None:
            check_train_dataset(dataset, "dataset")
            return dataset
        if self.dataset is None:
            raise InvalidArgumentError(
                "This pruner has no training set to take rows from (a saved result without its dataset). Pass it: "
                "`HFPruner.load(path, dataset=train_ds)` or `prune(ratio, dataset=train_ds)`; `select(ratio)` works "
                "without it."
            )
        return self.dataset

    def save_to_disk(self, path: str, ratio: float | None = None, *, epsilon: float | None = None,
                     dataset=None) -> str:
        """Write the pruned dataset with `save_to_disk`, and its provenance card as `README.md` beside it.

        Args:
            path (`str`): Output directory (`datasets.load_from_disk(path)` reads the pruned rows back).
            ratio (`float`, *optional*): Select at this ratio first; default: reuse the last selection.
            epsilon (`float`, *optional*): Parameter-shift tolerance instead of a ratio.
            dataset (`datasets.Dataset`, *optional*): Take the rows from this untokenized source (see [`prune`]).

        Returns:
            `str`: the path written.
        """
        from .hub import write_dataset_card

        if ratio is not None or epsilon is not None:
            self.select(ratio, epsilon=epsilon)
        elif self.result is None:
            raise InvalidArgumentError("Nothing selected yet: pass `ratio=` (the fraction of rows to remove).")
        pruned = self.result.to_dataset(self._rows_source(dataset))
        pruned.save_to_disk(str(path))
        write_dataset_card(path, self.result, pruned)
        return str(path)

    def compare_with_random(
        self,
        ratio: float | None = None,
        *,
        eval_dataset=None,
        model_init=None,
        seeds: tuple[int, ...] | list[int] = (0, 1, 2),
        args=None,
        data_collator=None,
    ) -> RandomComparison:
        """Retrain a fresh model on the pruned subset and on random subsets of the same size, and compare accuracy.

        The check the README asks for before trusting a pruned subset from a short run: for every seed `s`, one model
        is trained on this pruner's subset and one on a new random subset (`HFPruner(..., method="random",
        selector="random", seed=s)`), both from `model_init()` with the same recipe, the same number of epochs and
        training seed `s`, then tested on `eval_dataset`. Neither the caller's datasets nor the trainer are modified.

        Args:
            ratio (`float`, *optional*): Fraction of rows to remove. Default: the ratio of the last [`select`] or
                [`prune`] call, whose subset is then reused; a new ratio is selected (and becomes `self.result`).
            eval_dataset (`datasets.Dataset`, *optional*): Held-out rows to test on; default the trainer's
                `eval_dataset`.
            model_init (`Callable[[], nn.Module]`, *optional*): Returns a fresh model as it was before training (for
                fine-tuning, the pretrained one); default the trainer's `model_init`.
            seeds (`Sequence[int]`): Training seeds (and random draws); more seeds, a smaller standard error.
            args (`TrainingArguments`, *optional*): Recipe of the retraining runs; default the trainer's arguments.
            data_collator (*optional*): Default the trainer's collator.

        Returns:
            [`RandomComparison`]: per-seed accuracies of both sides, their means, difference and standard error. A
            warning is logged when the pruned subset trains worse than random on average.
        """
        def from_trainer(value, attribute: str, fix: str):
            value = value if value is not None else getattr(self.trainer, attribute, None)
            if value is None:
                raise InvalidArgumentError(fix)
            return value

        model_init = from_trainer(
            model_init, "model_init",
            "`compare_with_random` trains fresh models and has no way to make one: pass `model_init=`, a function "
            "returning the model as it was before training (e.g. `lambda: AutoModelForSequenceClassification"
            ".from_pretrained(name, num_labels=2)`), or build the trainer with `model_init=`.")
        eval_dataset = from_trainer(
            eval_dataset, "eval_dataset",
            "`compare_with_random` needs held-out rows to test on: pass `eval_dataset=` (rows not in the training "
            "set), or give the trainer an `eval_dataset`.")
        if isinstance(eval_dataset, dict):
            raise InvalidArgumentError(
                f"The trainer's `eval_dataset` is a dict ({', '.join(map(str, eval_dataset))}): pass one of them as "
                "`eval_dataset=`."
            )
        args = from_trainer(
            args, "args",
            "This pruner was made from a record, without a trainer: pass the retraining recipe as `args=` "
            "(`TrainingArguments`).")
        data_collator = data_collator if data_collator is not None else getattr(self.trainer, "data_collator", None)
        seeds = list(seeds)
        if not seeds or not all(is_int(s, numpy=False) for s in seeds):
            raise InvalidArgumentError(f"`seeds` must be a non-empty list of integers, got {seeds!r}.")
        if self.dataset is None:
            raise InvalidArgumentError(
                "This pruner has no training set to take rows from: pass it, `HFPruner.load(path, dataset=train_ds)`."
            )
        last_ratio = self.result.ratio if self.result is not None else None
        if ratio is None and last_ratio is None:
            raise InvalidArgumentError(
                "`ratio` is required (no earlier `prune(ratio)` to reuse): the fraction of rows to remove, in (0, 1)."
            )
        result = self.result if ratio is None or ratio == last_ratio else self.select(ratio)
        pruned_rows = self.dataset.select(result.kept)
        pruned, random, seconds = [], [], {"pruned": 0.0, "random": 0.0}
        for seed in seeds:
            drawn = HFPruner(record=self.record, dataset=self.dataset, method="random", selector="random",
                             seed=seed).select(result.ratio).kept
            for side, rows, accuracies in (("pruned", pruned_rows, pruned),
                                           ("random", self.dataset.select(drawn), random)):
                outcome = retrain_and_evaluate(model_init, rows, eval_dataset, args, seed=seed,
                                               data_collator=data_collator)
                accuracies.append(outcome.accuracy)
                seconds[side] += outcome.train_seconds
        comparison = RandomComparison(
            ratio=float(result.ratio), rows_kept=len(result.kept), method=f"{result.method} + {result.selector}",
            seeds=seeds, pruned=pruned, random=random, train_seconds=seconds,
        )
        logger.info(f"hf_prune: {comparison.summary()}")
        if comparison.difference < 0:
            logger.warning(
                f"hf_prune: the pruned subset trained worse than random subsets of the same size ({comparison.summary()}"
                "). Try another method or ratio, or train on a random subset; on short runs from scratch the default's "
                "memorisation switch can misfire (benchmarks/README.md, \"Digits\")."
            )
        return comparison

    def _score_columns(self) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {}
        for name, output in self._outputs.items():
            columns[name] = output.values
            for extra_name, values in output.extra.items():
                columns.setdefault(extra_name, values)
        return columns

    @property
    def _meta_record(self) -> TrainingRecord:
        """The record describing how the scores were made (the subset's under extrapolation)."""
        return self._subset_record if self.extrapolation is not None and self._subset_record else self.record

    @property
    def labels(self) -> np.ndarray:
        """Label of every training row."""
        if self._saved is not None:
            return np.asarray(self._saved.labels)
        if self.extrapolation is not None:
            return np.asarray(self.trainer.prune_labels)
        return np.asarray(self.record.labels)

    def _provenance(self) -> tuple[dict[str, Any], list[str] | None]:
        """Record summary and class names: from the saved result, or the record the scores came from."""
        if self._saved is not None:
            return dict(self._saved.record), self._saved.class_names
        record = self._meta_record
        label_column = record.meta["dataset"].get("label_column")
        names = record.meta.get("class_names")
        if names is None and label_column:
            names = class_names(self.dataset, label_column)
        summary = {key: record.meta.get(key) for key in ("dataset", "model", "optimizer", "training", "head")}
        if self.extrapolation is not None and self.trainer is not None:
            # The rows pruned are the whole training set's (the record holds the seed subset's signature).
            summary["dataset"] = dataset_signature(self.dataset, label_column) | {
                "note": "scores extrapolated from a seed subset"}
        return summary, names

    def push_to_hub(
        self,
        repo_id: str,
        ratio: float | None = None,
        *,
        epsilon: float | None = None,
        private: bool | None = None,
        token: str | None = None,
        allow_foreign_repo: bool = False,
        commit_message: str | None = None,
        local_dir: str | None = None,
        dataset=None,
    ) -> str:
        """Select at `ratio` (or reuse the last selection) and push the pruned dataset, the `scores` config and a
        provenance card to a Hub dataset repo. See [`hf_prune.hub.push_to_hub`] for the arguments; `dataset` is the
        untokenized source to take the rows from (see [`prune`]), so a text dataset is published as text.

        Returns:
            `str`: the repo URL.
        """
        from .hub import check_repo_id, push_to_hub

        check_repo_id(repo_id)
        if ratio is not None or epsilon is not None:
            self.select(ratio, epsilon=epsilon)
        elif self.result is None:
            raise InvalidArgumentError("Nothing selected yet: pass `ratio=` (the fraction of rows to remove).")
        return push_to_hub(self.result, self._rows_source(dataset), repo_id, private=private, token=token,
                           allow_foreign_repo=allow_foreign_repo, commit_message=commit_message, local_dir=local_dir)

    def _make_result(self, kept, ratio, epsilon, selection) -> PruneResult:
        summary, names = self._provenance()
        quality = self.run_quality if self._saved is None else (self._saved.info or {}).get("run_quality")
        info = {
            "run_quality": quality.to_dict() if isinstance(quality, RunQuality) else quality,
            "score_info": {name: out.info for name, out in self._outputs.items()},
            "extrapolation": self.extrapolation.options() if self.extrapolation is not None else None,
            "timing": dict(self._timing),
        }
        if selection is not None:
            info["selection"] = selection.info
        return PruneResult(
            kept=np.asarray(kept, dtype=np.int64),
            labels=self.labels,
            method=self.score.name,
            selector=self.selector.name,
            ratio=ratio,
            epsilon=epsilon,
            scores=self._score_columns(),
            config=self.config.to_dict(),
            buckets=list(selection.buckets) if selection is not None else [],
            info=info,
            record=summary,
            class_names=names,
            vectors=self._outputs[self.score.name].vectors if self.score.name in self._outputs else None,
            aux=dict(self._outputs[self.score.name].aux) if self.score.name in self._outputs else {},
        )
