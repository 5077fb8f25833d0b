"""Configuration: what is recorded, and which score and selector a pruner runs.

[`PruneArguments`] extends `transformers.TrainingArguments` with what is *recorded* during training; everything
decided after training (method, selector, budget) lives in [`SelectionConfig`](hf_prune.selection.SelectionConfig).
[`resolve_method`] turns what a user asks `HFPruner` for (a method, a selector, their options, or nothing: the default
policy) into the score and selector it runs, and [`options_from_result`] does the same for a saved result selected
again; [`selection_budget`] and [`selection_inputs`] state what one selection is asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import TrainingArguments

from .defaults import DEFAULT_METHOD, DEFAULT_SELECTOR
from .errors import InvalidArgumentError


if TYPE_CHECKING:  # pragma: no cover
    from .result import PruneResult
    from .scores.base import ScoreFunction, ScoreOutput
    from .selection.base import Budget, SelectionConfig, SelectionInputs, Selector


_FEATURE_DTYPES = ("float32", "float16")
_HEAD_STATE_CHOICES = ("auto", "never")


@dataclass
class PruneArguments(TrainingArguments):
    r"""
    `TrainingArguments` plus the settings of hf_prune's training record.

    Every `TrainingArguments` field keeps its meaning and default. The record (per optimizer step and per sample:
    loss, logits, logit gradient, label, head input, learning rate, which samples formed the step) is written to
    `record_dir` while the ordinary HF loop runs; scores and selectors read it afterwards.

    > Parameters that control the record

    Args:
        record_dir (`str`, *optional*):
            Directory of the training record. Defaults to `<output_dir>/prune_record`.
        head_module (`str`, *optional*):
            Dotted name of the classification head (the `nn.Linear` whose output are the logits), e.g.
            `"classifier.out_proj"`. Found automatically for BERT/RoBERTa/ViT/ResNet/ConvNeXt-style classifiers and
            for a plain `nn.Module` whose last `nn.Linear` produces the logits.
        label_column (`str`, *optional*):
            Name of the label column of the training set. Defaults to the first of `label`, `labels` and
            `label_names` found in the dataset. Another name reaches the model only if its `forward` takes an
            argument of that name (the Trainer drops the other columns); else rename the column to `labels`.
        track_features (`bool`, *optional*, defaults to `True`):
            Record the head input (penultimate features) of every sample at every step. Needed by `sgd_influence`,
            `influence_function`, `grand` and `moderate`; costs `4·d` bytes per sample and epoch.
        feature_dtype (`str`, *optional*, defaults to `"float32"`):
            Storage dtype of the recorded features, `"float32"` or `"float16"` (halves the record size).
        track_head_state (`str`, *optional*, defaults to `"auto"`):
            `"auto"`: with Adam/AdamW, record the head's first and second moments after every step (`2·P` floats per
            step for a head of `P` parameters), which the SGD-Influence recursion for Adam needs; `"never"`: don't.
        track_eval (`bool`, *optional*, defaults to `True`):
            After training, run the head probe over `eval_dataset` once (forward only) and store its features and
            logits; the SGD-Influence data-cleansing score uses their gradient as the query vector.
        score_epochs (`int`, *optional*):
            Stop training after this many epochs while keeping the learning-rate schedule of `num_train_epochs`
            (DUAL needs only the first epochs of a run: a short scoring run costs `score_epochs / num_train_epochs`).
        record_flush_rows (`int`, *optional*, defaults to `65536`):
            Number of per-sample rows kept in memory before they are appended to the on-disk record.
    """

    record_dir: str | None = field(
        default=None, metadata={"help": "Directory of the training record. Defaults to `<output_dir>/prune_record`."}
    )
    head_module: str | None = field(
        default=None,
        metadata={"help": "Dotted module name of the classification head (the nn.Linear producing the logits)."},
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column of the training set (default: `label`, then `labels`)."}
    )
    track_features: bool = field(
        default=True, metadata={"help": "Record the head input (penultimate features) of every sample and step."}
    )
    feature_dtype: str = field(
        default="float32", metadata={"help": "Storage dtype of recorded features: `float32` or `float16`."}
    )
    track_head_state: str = field(
        default="auto",
        metadata={"help": "Record the head's Adam moments per step: `auto` (Adam-type optimizers) or `never`."},
    )
    track_eval: bool = field(
        default=True,
        metadata={"help": "After training, store the eval set's head features and logits (query set for influence)."},
    )
    score_epochs: int | None = field(
        default=None,
        metadata={"help": "Stop after this many epochs but keep the LR schedule of `num_train_epochs` (DUAL)."},
    )
    record_flush_rows: int = field(
        default=65536, metadata={"help": "Per-sample rows buffered in memory before being appended to disk."}
    )

    def __post_init__(self):
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate >= 0):
            # Checked here, before any output is written (the optimizer refuses it only when training starts).
            raise InvalidArgumentError(
                f"`learning_rate` must be a finite number of 0 or more, got {self.learning_rate!r}."
            )
        if self.feature_dtype not in _FEATURE_DTYPES:
            raise InvalidArgumentError(
                f"`feature_dtype` must be one of {_FEATURE_DTYPES}, got {self.feature_dtype!r}."
            )
        if self.track_head_state not in _HEAD_STATE_CHOICES:
            raise InvalidArgumentError(
                f"`track_head_state` must be one of {_HEAD_STATE_CHOICES}, got {self.track_head_state!r}."
            )
        if self.score_epochs is not None and (not isinstance(self.score_epochs, int) or self.score_epochs < 1):
            raise InvalidArgumentError(
                f"`score_epochs` must be a positive integer (number of epochs to record), got {self.score_epochs!r}."
            )
        if self.score_epochs is not None and self.max_steps <= 0 and self.score_epochs > self.num_train_epochs:
            raise InvalidArgumentError(
                f"`score_epochs={self.score_epochs}` is more than the run's `num_train_epochs={self.num_train_epochs:g}`:"
                " it stops training after that many epochs of the schedule, so it must be smaller; leave it out to "
                "record the whole run."
            )
        if not isinstance(self.record_flush_rows, int) or self.record_flush_rows < 1:
            raise InvalidArgumentError(
                f"`record_flush_rows` must be a positive integer, got {self.record_flush_rows!r}."
            )
        super().__post_init__()


def to_prune_arguments(args: TrainingArguments | None, **overrides: Any) -> PruneArguments:
    """`args` as [`PruneArguments`] (every value kept), with `overrides` replacing some of them."""
    if args is None:
        return PruneArguments(**{"output_dir": "trainer_output", **overrides})
    if isinstance(args, PruneArguments) and not overrides:
        return args
    cls = type(args) if isinstance(args, PruneArguments) else TrainingArguments
    values = {f.name: getattr(args, f.name) for f in fields(cls) if f.init and hasattr(args, f.name)}
    return PruneArguments(**{**values, **overrides})


# ---------------------------------------------------------------------------------- the method a pruner runs
# `DEFAULT_METHOD` and `DEFAULT_SELECTOR` (the default policy: the selector with its own defaults) live in
# `hf_prune.defaults`, which `SelectionConfig` reads too; they are imported above and stay readable here.
#: The name that pins the default policy: `HFPruner(trainer, method="default")`.
DEFAULT_POLICY = "default"
#: Options of every selection ([`SelectionConfig`](hf_prune.selection.SelectionConfig) fields), as opposed to the
#: options of one score or selector.
SELECTION_OPTIONS = ("class_quota", "min_per_class", "allow_empty_classes", "seed")


def default_selector(score: ScoreFunction | type[ScoreFunction]) -> str:
    """The selector a method uses unless told otherwise: its own default, else vector methods optimise and scalar
    scores keep the top."""
    if score.default_selector:
        return score.default_selector
    return "greedy" if score.kind == "vector" else "topk"


def check_default_policy(selector: Any) -> None:
    """Refuse a `selector` other than the default policy's with `method="default"`."""
    if selector not in (None, DEFAULT_SELECTOR):
        raise InvalidArgumentError(
            f"`method={DEFAULT_POLICY!r}` is the library's default policy (the `{DEFAULT_METHOD}` score with "
            f"the `{DEFAULT_SELECTOR}` selector); it takes no other `selector` (got {selector!r}). Pass "
            f"`method={DEFAULT_METHOD!r}, selector={selector!r}` instead."
        )


def resolve_method(
    method: str | ScoreFunction | None, selector: str | Selector | None, options: dict[str, Any],
    saved: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
) -> tuple[ScoreFunction, Selector]:
    """The score and the selector that `HFPruner(..., method, selector, **options)` runs.

    With neither `method` nor `selector`, or with `method="default"`, the default policy ([`DEFAULT_METHOD`] kept by
    [`DEFAULT_SELECTOR`]); with a method only, the method's [`default_selector`]. Each option goes to whichever of the
    score and the selector accepts it; an option neither accepts, or a selector that needs influence vectors with a
    scalar score, is an [`InvalidArgumentError`].

    Args:
        method (`str` or `ScoreFunction`, *optional*): A registered score name (`hf_prune.list_scores()`), an
            instance, or `"default"`.
        selector (`str` or `Selector`, *optional*): A registered selector name (`hf_prune.list_selectors()`) or an
            instance.
        options (`dict`): Options of the score or of the selector.
        saved (`tuple[dict, dict]`, *optional*): A saved result's score options and selector options, each given to
            its own side only (a name both accept, such as `solver`, keeps each side's value); `options` override.

    Returns:
        `tuple[ScoreFunction, Selector]`: the score and the selector, built with their options.

    Example:

    ```python
    >>> score, selector = resolve_method("el2n", None, {})
    >>> score.name, selector.name
    ('el2n', 'topk')
    ```
    """
    from .scores.base import ScoreFunction, get_score, score_class
    from .selection.base import Selector, get_selector

    if method == DEFAULT_POLICY:
        check_default_policy(selector)
        method = None
    if method is None and selector is None:
        method, selector = DEFAULT_METHOD, DEFAULT_SELECTOR
    method = method if method is not None else DEFAULT_METHOD
    score_cls = type(method) if isinstance(method, ScoreFunction) else score_class(method)
    score_options, selector_options = _route_options(score_cls, selector, options)
    score_options, selector_options = {**saved[0], **score_options}, {**saved[1], **selector_options}
    score = method if isinstance(method, ScoreFunction) else get_score(method, **score_options)
    if not isinstance(selector, Selector):
        selector = get_selector(selector or default_selector(score), **selector_options)
    _check_compatible(score, selector)
    return score, selector


def _route_options(score_cls: type, selector: str | Selector | None, options: dict[str, Any]) -> tuple[dict, dict]:
    """`options` split into the score's and the selector's (an option both accept goes to both)."""
    from .selection.base import Selector, accepted_options, selector_class

    if isinstance(selector, Selector):
        selector_cls = type(selector)
    else:
        selector_cls = selector_class(selector if selector is not None else default_selector(score_cls))
    score_accepts = accepted_options(score_cls)
    selector_accepts = accepted_options(selector_cls) if selector_cls is not None else set()
    score_options, selector_options = {}, {}
    for key, value in options.items():
        if key not in score_accepts and key not in selector_accepts:
            raise InvalidArgumentError(
                f"Unknown option `{key}`: score `{score_cls.name}` accepts {sorted(score_accepts) or 'no options'} "
                f"and selector `{getattr(selector_cls, 'name', selector)}` accepts "
                f"{sorted(selector_accepts) or 'no options'}."
            )
        if key in score_accepts:
            score_options[key] = value
        if key in selector_accepts:
            selector_options[key] = value
    return score_options, selector_options


def _check_compatible(score: ScoreFunction, selector: Selector) -> None:
    """Refuse a score and a selector that cannot work together: a vector selector with a scalar score, or a selector
    that needs an auxiliary array (`selector.needs_aux`) the score does not provide (`score.provides_aux`; a score
    that declares nothing, see [`hf_prune.scores.base.provided_aux`], is not checked)."""
    from .scores.base import list_scores, provided_aux, score_class
    from .selection.base import list_selectors, selector_class

    if selector.needs == "vector" and score.kind != "vector":
        vector_scores = ", ".join(f"`{name}`" for name in list_scores() if score_class(name).kind == "vector")
        scalar_selectors = ", ".join(f"`{name}`" for name in list_selectors() if selector_class(name).needs != "vector")
        raise InvalidArgumentError(
            f"Selector `{selector.name}` optimises over per-sample influence vectors, but score `{score.name}` is a "
            f"scalar score. Use a vector method ({vector_scores}) or a scalar selector ({scalar_selectors})."
        )
    provided = provided_aux(score)
    missing = [name for name in selector.needs_aux if provided is not None and name not in provided]
    if missing:
        arrays = ", ".join(f"`{name}`" for name in missing)
        providers = [name for name in list_scores() if set(missing) <= set(provided_aux(score_class(name)) or ())
                     and (selector.needs != "vector" or score_class(name).kind == "vector")]
        if providers:
            use = (f"Use a score that provides them ({', '.join(f'`{name}`' for name in providers)}), e.g. "
                   f"`HFPruner(trainer, method={providers[0]!r}, selector={selector.name!r})`")
        else:
            use = "No registered score provides them: register one that lists them in its `provides_aux`"
        free = ", ".join(
            f"`{name}`" for name in list_selectors()
            if not selector_class(name).needs_aux and (score.kind == "vector" or selector_class(name).needs != "vector")
        )
        has = ", ".join(f"`{name}`" for name in provided) or "none"
        raise InvalidArgumentError(
            f"Selector `{selector.name}` needs the auxiliary per-row array(s) {arrays} from the score, but score "
            f"`{score.name}` does not provide them (its auxiliary arrays: {has}). {use}; or keep `{score.name}` with a "
            f"selector that needs none ({free})."
        )


_MISSING = object()


def options_from_result(
    result: PruneResult, method: str | None, selector: str | None, options: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any], dict[str, Any], tuple[dict[str, Any], dict[str, Any]]]:
    """What to select again with from a saved result: its method, selector and options unless overridden.

    The saved method is the default, and with it the saved selector. The saved selector options apply whenever the
    selector is the saved one, the saved score options whenever the method is (each filtered to what the score or
    selector accepts). The selection options ([`SELECTION_OPTIONS`]) are the saved ones unless `options` sets them;
    the other `options` override the saved selector options.

    Args:
        result ([`PruneResult`]): The saved result.
        method (`str`, *optional*): Which saved score to select with (default: the saved method); `"default"`
            pins the default policy (its score and selector, the selector's own options, not the saved ones).
        selector (`str`, *optional*): The selector (default: the saved one when the method is the saved one).
        options (`dict`): Selection options and options of the score or selector, given by the caller.

    Returns:
        `tuple`: `(method, selector, selection, options, saved)`: `selection` holds the [`SELECTION_OPTIONS`],
        `options` the caller's other options, `saved` the saved score options and selector options (for
        [`resolve_method`]'s `saved`, which keeps them apart).
    """
    from .scores.base import score_class
    from .selection.base import accepted_options, selector_class

    options = dict(options)
    pinned = method == DEFAULT_POLICY
    if pinned:  # the default policy by name: its score, its selector with the selector's own defaults
        check_default_policy(selector)
        method, selector = DEFAULT_METHOD, DEFAULT_SELECTOR
    method = method or result.method
    config = dict(result.config or {})
    if selector is None and method == result.method:
        selector = result.selector
    selection = {key: options.pop(key, config.get(key)) for key in SELECTION_OPTIONS}
    selection = {key: value for key, value in selection.items() if value is not None}
    selector_options = (dict(config.get("selector_options", {}))
                        if selector == result.selector and not pinned else {})
    selector_cls = selector_class(selector or default_selector(score_class(method)))
    selector_options = {k: v for k, v in selector_options.items() if k in accepted_options(selector_cls)}
    score_options = dict(config.get("score_options", {})) if method == result.method else {}
    score_accepts = accepted_options(score_class(method))
    score_options = {k: v for k, v in score_options.items() if k in score_accepts}
    # The saved scores are read as they are: a score option other than the one they were computed with would be
    # recorded as applied without being applied (the card would say so too).
    unapplied = {k: v for k, v in options.items() if k in score_accepts and k not in accepted_options(selector_cls)
                 and score_options.get(k, _MISSING) != v}
    if unapplied:
        given = ", ".join(f"{k}={v!r}" for k, v in unapplied.items())
        raise InvalidArgumentError(
            f"`{given}` is an option of the score `{method}`, but a saved result holds its scores as computed "
            f"({score_options or 'with their defaults'}) and cannot compute them again. Score again from the "
            f"training record (`HFPruner(trainer, {given})` or `HFPruner(record=..., {given})`), or drop the option."
        )
    return method, selector, selection, options, (score_options, selector_options)


def selection_budget(ratio: float | None, epsilon: float | None, num_rows: int) -> Budget:
    """The budget of one selection over `num_rows` rows: exactly one of `ratio` (the fraction of rows to remove, in
    (0, 1)) and `epsilon` (a parameter-shift tolerance, vector selectors only), checked."""
    from .selection.base import Budget, check_ratio, keep_count
    from .validation import check_number

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
        budget.ratio = check_ratio(ratio, num_rows)
        budget.n_keep = keep_count(budget.ratio, num_rows)
    else:
        budget.epsilon = check_number("epsilon", epsilon, 0, low_open=True, finite=True)
    return budget


def selection_inputs(config: SelectionConfig, labels, output: ScoreOutput, dataset=None) -> SelectionInputs:
    """What the selector reads: the score `output` of every row (values, vectors, auxiliary arrays, the score's
    self-check) with `labels`, under `config`'s selection options (seed, class quota, class floor)."""
    from .selection.base import SelectionInputs

    labels = np.asarray(labels)
    self_check = output.info.get("self_check")
    return SelectionInputs(
        labels=labels, scores=output.values, vectors=output.vectors, aux=output.aux, seed=config.seed,
        class_quota=config.class_quota, min_per_class=config.min_per_class,
        allow_empty_classes=config.allow_empty_classes, num_classes=int(labels.max()) + 1, dataset=dataset,
        aux_info={"self_check": self_check} if self_check else {},
    )
