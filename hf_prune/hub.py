"""Publishing a pruned dataset on the Hugging Face Hub, with its scores and a provenance card.

`push_to_hub` writes to a dataset repo:

* the pruned rows as the `default` config (split `train`), every original column plus `source_index` and the
  `score_<name>` columns;
* a `scores` config: every row of the original training set with `source_index`, `label`, all scores and the `keep`
  mask at the pushed ratio, so that `load_dataset(repo_id, "scores")` lets anyone select again without retraining;
* a dataset card whose YAML (key `hf_prune`) and a short readable section record how the subset was made. The card
  is *merged* into the README that `push_to_hub` maintains (its `configs` and `dataset_info` are kept).

A repo that exists but was not made by hf_prune is refused unless `allow_foreign_repo=True`. Both datasets are saved
to a local directory before anything is sent, so a failed or interrupted push loses nothing and can be retried.
Tokens are never printed, logged, or written into files or cards.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from . import logging
from .errors import HubError, InvalidArgumentError
from .result import PruneResult, savable
from .version import PROJECT_URL, __version__


logger = logging.get_logger(__name__)

MARKER_START = "<!-- hf_prune:start -->"
MARKER_END = "<!-- hf_prune:end -->"
TAGS = ["hf-prune", "dataset-pruning"]

SIGN_CONVENTION = (
    "Every score_<name> column follows one convention: higher means keep (harder, more uncertain or more "
    "influential rows rank first). aum is the negated area under the margin; sgd_influence and influence_function are "
    "the norms of per-sample head-parameter influence vectors; sgd_influence_eval is the linear influence of removing "
    "the row on the summed evaluation loss (positive: the row helps)."
)


def _redact(text: str, token: str | None) -> str:
    text = str(text)
    if token:
        text = text.replace(token, "<redacted>")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_<redacted>", text)


def check_repo_id(repo_id: Any) -> str:
    """Validate a dataset repo id (`namespace/name`), raising [`InvalidArgumentError`] with the rules."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not repo_id:
        raise InvalidArgumentError(f"`repo_id` must be a string like 'username/dataset-name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InvalidArgumentError(
            f"`repo_id={repo_id!r}` is not a valid Hub repo id ({err}). Use 'username/dataset-name' with letters, "
            "digits, '-', '_' and '.'."
        ) from err
    if repo_id.count("/") != 1:
        raise InvalidArgumentError(f"`repo_id={repo_id!r}` must be 'namespace/name' (your user or an organisation).")
    return repo_id


def resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError(
            "Pushing needs a Hugging Face token with write access, and none was found. Log in with `hf auth login` "
            "(or `huggingface-cli login`), set the `HF_TOKEN` environment variable, or pass `token=`."
        )
    return token


def _plain(value: Any) -> Any:
    """`value` as a plain YAML scalar or list of scalars, or `None` when it is not one (arrays, nested objects)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6) if np.isfinite(value) else None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) <= 64:
        items = [_plain(item) for item in value]
        return items if all(item is not None for item in items) else None
    return None


def selection_outcome(result: PruneResult) -> dict[str, Any]:
    """What the selector decided from the data (e.g. the memorisation gap of the default, whether the cutoff
    applied, which classes the floor lifted) and what the run's self-check measured, as plain YAML values."""
    info = (result.info or {}).get("selection") or {}
    outcome = {}
    for key, value in info.items():
        if key == "self_check" and isinstance(value, dict):
            checked = {k: _plain(v) for k, v in value.items()}
            outcome[key] = {k: v for k, v in checked.items() if v is not None}
        elif (plain := _plain(value)) is not None:
            outcome[key] = plain
    return outcome


def self_check_sentence(result: PruneResult) -> str:
    """What the run's self-check measured and what the selector did about it, in one sentence (empty if nothing)."""
    selection = (result.info or {}).get("selection") or {}
    check = selection.get("self_check") or {}
    if not check:
        return ""
    facts = []
    if check.get("extrapolation_fit") is not None:
        facts.append(f"extrapolated scores (leave-one-out kNN fit on the seeds {check['extrapolation_fit']:.2f})")
    elif check.get("reliability") is not None:
        facts.append(f"split-half reliability of the rows' difficulty {check['reliability']:.2f}")
    elif "reliability" in check:
        facts.append(f"reliability not measurable ({check.get('unmeasurable') or 'no self-check'})")
    if check.get("eval_gap") is not None:
        facts.append(f"training fit minus eval accuracy {check['eval_gap']:.3f} (floored at 0)")
    if check.get("prequential_gap") is not None:
        facts.append(f"memorisation gap (prequential) {check['prequential_gap']:.3f}")
    decisions = []
    if selection.get("trust") is not None:
        trust = float(selection["trust"])
        why_not = {"gate": "the two halves of the run did not agree on which rows are hard beyond chance; ",
                   "unmeasurable": "their reliability could not be measured; ",
                   "short-record": ("they were read from a scoring run stopped too early to rank the rows as the "
                                    "whole run would; ")}.get(selection.get("trust_rule"), "")
        decisions.append("the selection followed the scores fully" if trust >= 1.0 else
                         f"the scores were not followed ({why_not}class-stratified uniform sampling)" if trust <= 0.0
                         else f"the selection followed the scores at trust {trust:.2f} (the rest of every row's "
                         "inclusion probability is class-stratified uniform sampling)")
    if "cutoff_applied" in selection:
        decisions.append("the rows fit only by memorisation were set aside" if selection["cutoff_applied"] else
                         "no rows were set aside as memorised")
    if selection.get("late_set_aside"):
        horizon = selection.get("late_horizon_epochs") or 1
        after = "its first epoch" if horizon == 1 else f"epoch {horizon}"
        steps = selection.get("subset_steps")
        decisions.append(f"the {selection['late_set_aside']} rows the scoring run learned only after {after} got no "
                         f"weight (the subset trains for {selection['subset_recorded_epochs']:.2f} of the run's epochs "
                         "in steps" + ("" if steps is None else f", about {steps:.0f} optimizer steps") + ")")
    if selection.get("late_guarded"):
        decisions.append(f"class(es) {selection['late_guarded']} were planned at their share (or their count without "
                         "that rule, if less) before the class floor's split")
    if selection.get("floor_lifted"):
        decisions.append(f"class(es) {selection['floor_lifted']} were lifted to {selection.get('class_floor')} of "
                         "their share")
    text = "Self-check of the scores: " + ", ".join(facts) if facts else ""
    if decisions:
        text += ("; " if text else "") + "; ".join(decisions)
    return text + "." if text else ""


def provenance(result: PruneResult) -> dict[str, Any]:
    """The `hf_prune` block of the card YAML: everything needed to understand or reproduce the subset."""
    record = result.record or {}
    dataset = record.get("dataset") or {}
    training = record.get("training") or {}
    model = record.get("model") or {}
    score_info = (result.info or {}).get("score_info", {}).get(result.method, {})
    counts = result.counts_per_class()
    return {
        "version": __version__,
        "method": result.method,
        "selector": result.selector,
        "pruning_ratio": result.ratio,
        "epsilon": result.epsilon,
        "rows": {"source": result.num_samples, "kept": result.num_kept, "removed": result.num_removed},
        "kept_per_class": {name: c["kept"] for name, c in counts.items()},
        "source_per_class": {name: c["total"] for name, c in counts.items()},
        "solver_status": result.solver_summary(),
        "sketch_size": score_info.get("sketch_size"),
        "selection": {k: v for k, v in (result.config or {}).items() if k != "score_options"},
        "score_options": (result.config or {}).get("score_options"),
        "selection_outcome": selection_outcome(result),
        "source_dataset": {k: dataset.get(k) for k in ("builder_name", "config_name", "version", "fingerprint",
                                                       "num_rows", "label_column") if dataset.get(k) is not None},
        "model": {k: model.get(k) for k in ("class", "name_or_path", "config_hash", "num_parameters")
                  if model.get(k) is not None},
        "training": {k: training.get(k) for k in ("num_train_epochs", "learning_rate", "optim", "seed", "data_seed",
                                                  "per_device_train_batch_size") if k in training},
        "optimizer": (record.get("optimizer") or {}).get("type"),
        "scoring_run": {k: v for k, v in ((result.info or {}).get("run_quality") or {}).items() if v is not None},
        **({"scoring_checkpoints": record["checkpoints"]} if record.get("checkpoints") else {}),
        "score_convention": SIGN_CONVENTION,
    }


def provenance_sentence(result: PruneResult, facts: dict[str, Any]) -> str:
    """Where the scores come from: one recorded `Trainer` run, or forward passes of saved checkpoints."""
    checkpoints = (result.record or {}).get("checkpoints")
    model = facts["model"].get("name_or_path") or facts["model"].get("class", "the model")
    extrapolation = (result.info or {}).get("extrapolation")
    if extrapolation:
        seeds = extrapolation.get("seed_rows")
        return (f"The scores were extrapolated (`{extrapolation.get('method')}`, k = {extrapolation.get('k')}) from "
                f"a `transformers.Trainer` run of `{model}` on a seed subset of "
                + (f"{seeds} rows" if seeds else f"{extrapolation.get('fraction')} of the rows")
                + " (score extrapolation): the training facts below are the seed run's.")
    if not checkpoints:
        return f"The scores were recorded during one ordinary `transformers.Trainer` run of `{model}`."
    names = [str(name) for name in checkpoints.get("names") or []]
    shown = ", ".join(f"`{name}`" for name in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    weighting = {"learning_rates": "weighted by the learning rates given",
                 "trainer_state": "weighted by the learning rates their `trainer_state.json` logged",
                 "uniform": "weighted equally"}.get(checkpoints.get("weights_from"), "")
    return (f"No training run was recorded: the scores come from forward passes of {len(names)} saved "
            f"checkpoint(s) ({shown}{'; ' + weighting if weighting else ''}) with `HFPruner.from_checkpoints`.")


def source_name(result: PruneResult) -> str | None:
    """The source dataset's name when `datasets` knows it (a Hub or packaged builder), else `None`."""
    dataset = (result.record or {}).get("dataset") or {}
    name = dataset.get("builder_name")
    if name and dataset.get("config_name") not in (None, "default"):
        name = f"{name} ({dataset['config_name']})"
    return name


def quality_sentence(result: PruneResult) -> str:
    """How well the scoring run trained, in one sentence (empty when the result does not say)."""
    quality = (result.info or {}).get("run_quality") or {}
    if quality.get("train_loss") is None:
        return ""
    text = (f"The scoring run ended its last scored epoch (epoch {int(quality.get('epoch', 0)) + 1}) with training "
            f"loss {quality['train_loss']:.4f} (predicting the class frequencies: {quality['label_entropy']:.4f}) and "
            f"training accuracy {quality['train_accuracy']:.4f}")
    if quality.get("eval_accuracy") is not None:
        text += f"; its final model scored {quality['eval_accuracy']:.4f} accuracy on {quality['eval_rows']} held-out rows"
    if quality.get("short_record"):
        text += (f". The scores read a short record: {quality['recorded_epochs']} of the "
                 f"{quality['planned_epochs']:g} planned epochs (`score_epochs`), so they describe the start of training")
    return text + "."


def card_section(result: PruneResult, repo_id: str | None) -> str:
    """The readable Markdown section of the card (between hf_prune markers, replaced on every push or save).

    With `repo_id`, the card of a Hub repo (its `scores` config); without, the card of a local copy.
    """
    facts = provenance(result)
    budget = (f"pruning ratio {result.ratio} (fraction removed)" if result.ratio is not None
              else f"parameter-shift tolerance ε = {result.epsilon}")
    source = source_name(result)
    source_text = f"of `{source}`" if source else "of its source training set"
    lines = [
        MARKER_START,
        "## How this dataset was pruned",
        "",
        f"This dataset keeps **{result.num_kept} of {result.num_samples}** rows {source_text} "
        f"({budget}), chosen by [hf_prune]({PROJECT_URL}) {__version__} with the score `{result.method}` and "
        f"the selector `{result.selector}`. {provenance_sentence(result, facts)} "
        + " ".join(part for part in (quality_sentence(result), self_check_sentence(result)) if part),
        "",
        "| class | source rows | kept rows |",
        "|---|---|---|",
    ]
    for name in facts["kept_per_class"]:
        lines.append(f"| {name} | {facts['source_per_class'][name]} | {facts['kept_per_class'][name]} |")
    where = (f"in the `scores` config: `load_dataset(\"{repo_id}\", \"scores\")`" if repo_id else
             "in the saved result this card was written with (`HFPruner.load(<its directory>)`)")
    lines += [
        "",
        f"Every source row, with its scores and the `keep` mask of this selection, is {where}. Select again at "
        "another ratio without retraining with `hf-prune select` or by sorting a `score_<name>` column. "
        + SIGN_CONVENTION,
        "",
        "The exact settings (method and selector options, seeds, solver status per bucket summary, sketch size, model "
        "configuration hash, training arguments) are in the `hf_prune` entry of this card's metadata.",
        MARKER_END,
    ]
    return "\n".join(lines)


def write_dataset_card(directory: str | os.PathLike, result: PruneResult, dataset=None) -> str:
    """Write the provenance card as `README.md` into a local output (a `save_to_disk` folder, a saved result).

    The same YAML metadata (`hf_prune`, tags, `source_datasets`) and Markdown section as a Hub push; an existing
    `README.md` in `directory` is merged (its other text and metadata are kept), not overwritten.

    Args:
        directory (`str` or `os.PathLike`): The output directory (created if missing).
        result ([`PruneResult`]): The selection the directory holds (or selects from).
        dataset (`datasets.Dataset`, *optional*): The dataset written there; its features go into the card's
            `dataset_info` when given.

    Returns:
        `str`: the path of the card.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "README.md"
    card = DatasetCard(path.read_text(encoding="utf-8")) if path.is_file() else \
        DatasetCard(f"---\n{DatasetCardData().to_yaml()}\n---\n")
    _fill_card(card, result, None)
    if dataset is not None and getattr(dataset, "features", None) is not None:
        card.data.dataset_info = {"features": dataset.features._to_yaml_list(), "splits": [
            {"name": "train", "num_examples": len(dataset)}]}
    path.write_text(str(card), encoding="utf-8")
    return str(path)


def _fill_card(card, result: PruneResult, repo_id: str | None) -> None:
    """Merge the provenance of `result` into `card`: the `hf_prune` metadata, the tags, the source dataset (unless the
    card names one) and the readable section; the card's other metadata and text are kept."""
    card.data.hf_prune = provenance(result)
    card.data.tags = sorted(set(getattr(card.data, "tags", None) or []) | set(TAGS))
    source = (result.record or {}).get("dataset", {}).get("builder_name")
    if source and not getattr(card.data, "source_datasets", None):
        card.data.source_datasets = [source]
    card.text = merge_card_text(card.text or "", card_section(result, repo_id))


def other_process() -> bool:
    """Whether this is a process other than the main one of a `torch.distributed` run: there only the main process
    writes files or pushes (as `Accelerator.save` does), so every process may call the same save or push without two
    of them writing one directory at once."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 and dist.get_rank() != 0


def save_result(result: PruneResult, path: str | os.PathLike, dataset=None) -> str:
    """Save `result` (`PruneResult.save`, with the training set `dataset` if given) and its provenance card. Under
    several processes only the main one writes ([`other_process`]); the others return the path.

    Returns:
        `str`: the path written (`HFPruner.load(path)` selects from it again).
    """
    if other_process():
        return str(path)
    saved = result.save(path, dataset=None if dataset is None else savable(dataset))
    write_dataset_card(saved, result)
    return saved


def save_pruned(result: PruneResult, dataset, path: str | os.PathLike) -> str:
    """Write the kept rows of `dataset` with `save_to_disk` (see `PruneResult.to_dataset`), and the provenance card
    as `README.md` beside them. Under several processes only the main one writes ([`other_process`]).

    Returns:
        `str`: the path written (`datasets.load_from_disk(path)` reads the pruned rows back).
    """
    if other_process():
        return str(path)
    pruned = savable(result.to_dataset(dataset))
    pruned.save_to_disk(str(path))
    write_dataset_card(path, result, pruned)
    return str(path)



def merge_card_text(text: str, section: str) -> str:
    if MARKER_START in text and MARKER_END in text:
        before = text[: text.index(MARKER_START)]
        after = text[text.index(MARKER_END) + len(MARKER_END):]
        return before + section + after
    return (text.rstrip() + "\n\n" + section + "\n") if text.strip() else section + "\n"


def _is_ours(card) -> bool:
    data = card.data.to_dict() if card is not None else {}
    return "hf_prune" in data or "hf-prune" in (data.get("tags") or [])


def _hub_failure(err: Exception, repo_id: str, token: str | None, local: Path) -> HubError:
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403):
        fix = (f"The Hub refused the token ({status}): it cannot write to {repo_id!r}. Use a token with write access "
               "to that namespace (your user name or an organisation you can write to), or push to a repo of your "
               "own; then retry the same push.")
    else:
        fix = "Retry the same push when the Hub is reachable; it completes the upload."
    return HubError(
        f"Pushing to the Hub repo {repo_id!r} failed ({type(err).__name__}: {_redact(err, token)}). Nothing is lost: "
        f"the pruned dataset and its scores are saved at {str(local)!r} (`datasets.load_from_disk`). {fix}"
    )


def push_to_hub(
    result: PruneResult,
    dataset,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    allow_foreign_repo: bool = False,
    commit_message: str | None = None,
    local_dir: str | os.PathLike | None = None,
) -> str:
    """Push a pruned dataset, its `scores` config and a provenance card to a Hub dataset repo.

    Args:
        result ([`PruneResult`]): The selection to publish.
        dataset (`datasets.Dataset`): The training set it selects from.
        repo_id (`str`): `namespace/name` of the dataset repo (created if missing).
        private (`bool`, *optional*): Visibility of a newly created repo.
        token (`str`, *optional*): Write token (default: the logged-in token or `HF_TOKEN`).
        allow_foreign_repo (`bool`): Allow pushing into an existing repo that hf_prune did not create.
        commit_message (`str`, *optional*): Message of the data commits.
        local_dir (`str`, *optional*): Where the datasets are saved before the push (default
            `./hf_prune_push/<namespace>__<name>`).

    Returns:
        `str`: the dataset repo URL.

    Example:

    ```python
    >>> from hf_prune import push_to_hub
    >>> push_to_hub(pruner.result, train_ds, "username/fmnist-pruned-40")
    ```
    """
    check_repo_id(repo_id)
    if other_process():  # the main process pushes
        from huggingface_hub import HfApi

        return f"{HfApi().endpoint}/datasets/{repo_id}"
    token = resolve_token(token)  # before anything is written: without a token nothing is pushed or copied
    pruned = savable(result.to_dataset(dataset))
    scores = result.scores_dataset()
    local = Path(local_dir) if local_dir is not None else Path("hf_prune_push") / repo_id.replace("/", "__")
    local.mkdir(parents=True, exist_ok=True)
    pruned.save_to_disk(str(local / "pruned"))
    write_dataset_card(local / "pruned", result, pruned)  # the local copy says how it was made, pushed or not
    scores.save_to_disk(str(local / "scores"))

    from huggingface_hub import DatasetCard, HfApi

    api = HfApi(token=token)
    message = commit_message or f"hf_prune: {result.summary()}"
    try:
        _prepare_repo(api, repo_id, result, token, private=private, allow_foreign_repo=allow_foreign_repo, local=local)
        pruned.push_to_hub(repo_id, config_name="default", split="train", token=token, private=private,
                           commit_message=message)
        scores.push_to_hub(repo_id, config_name="scores", split="train", token=token, private=private,
                           commit_message=f"{message} (scores)")
        card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        _refresh_features(card, {"default": pruned, "scores": scores})
        _fill_card(card, result, repo_id)
        card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="hf_prune: provenance card")
    except HubError:
        raise
    except Exception as err:  # noqa: BLE001 - network, HTTP and client errors all become one clear HubError
        raise _hub_failure(err, repo_id, token, local) from None
    url = f"{api.endpoint}/datasets/{repo_id}"
    logger.info(f"hf_prune: pushed {result.num_kept} rows and the scores of {result.num_samples} rows to {url}")
    return url


def _refresh_features(card, pushed: dict[str, Any]) -> None:
    """Set the card's `dataset_info` features of each pushed config to the pushed rows' own. `datasets` keeps a
    config's earlier features when a push replaces its only split, so a second push with other columns (another
    method's `score_<name>`, untokenized rows) left a card that no longer loads (`CastError`)."""
    from datasets.info import DatasetInfosDict

    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    changed = False
    for name, rows in pushed.items():
        if name in infos and infos[name].features != rows.features:
            infos[name].features = rows.features
            changed = True
    if changed:
        infos.to_dataset_card_data(card.data)


def _prepare_repo(api, repo_id: str, result: PruneResult, token: str, *, private: bool | None,
                  allow_foreign_repo: bool, local: Path) -> None:
    """Refuse an existing repo that hf_prune did not make (unless `allow_foreign_repo`), or create the repo with a
    first card that marks it as hf_prune's."""
    from huggingface_hub import DatasetCard, DatasetCardData
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        api.repo_info(repo_id, repo_type="dataset")
        exists = True
    except RepositoryNotFoundError:
        exists = False
    if exists:
        try:
            existing = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        except EntryNotFoundError:
            existing = None
        if not _is_ours(existing) and not allow_foreign_repo:
            raise HubError(
                f"The dataset repo {repo_id!r} already exists and was not made by hf_prune (its card has no "
                "`hf_prune` metadata). Pushing would add configs and rewrite its card; pass "
                f"`allow_foreign_repo=True` to do it anyway, or choose another `repo_id`. The pruned dataset is "
                f"saved at {str(local)!r}."
            )
    else:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # Mark the repo as hf_prune's in its first commit, so that a retry after a failed push recognises it.
        card = DatasetCard(f"---\n{DatasetCardData(tags=TAGS).to_yaml()}\n---\n\n{card_section(result, repo_id)}\n")
        card.data.hf_prune = provenance(result)
        card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="hf_prune: create card")
