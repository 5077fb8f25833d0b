"""Which Trainer checkpoint a recording run resumes from.

A checkpoint is resumable when the Trainer finished writing it (its `trainer_state.json`, written last, exists) and it
holds this process's record manifest (the row counts the record is cut back to, written by the recorder).
"""

from __future__ import annotations

import os

from ..errors import RecordError
from ..logging import get_logger
from .record import CHECKPOINT_MANIFEST


logger = get_logger(__name__)


def last_complete_checkpoint(output_dir: str, rank: int = 0) -> str | None:
    """The newest `checkpoint-*` folder that the Trainer finished writing (its `trainer_state.json`, written last,
    exists) and that holds this process's record manifest; incomplete ones (a save killed midway) are skipped."""
    if not os.path.isdir(output_dir):
        return None
    candidates = []
    for name in os.listdir(output_dir):
        if name.startswith("checkpoint-") and name[len("checkpoint-"):].isdigit():
            candidates.append((int(name[len("checkpoint-"):]), os.path.join(output_dir, name)))
    for _step, path in sorted(candidates, reverse=True):
        complete = os.path.isfile(os.path.join(path, "trainer_state.json"))
        manifest = os.path.isfile(os.path.join(path, CHECKPOINT_MANIFEST.format(rank=rank)))
        if complete and manifest:
            return path
        logger.warning(f"Skipping checkpoint {path}: incomplete (an interrupted save), not resumable.")
    return None


def resolve_checkpoint(resume_from_checkpoint: str | bool | None, output_dir: str, rank: int = 0) -> str | None:
    """The checkpoint `Trainer.train(resume_from_checkpoint=...)` resumes from, or `None` to train from the start.

    `True` picks the last complete checkpoint of `output_dir`; a path must be a complete checkpoint.

    Raises:
        [`RecordError`]: `True` with no complete checkpoint, or a path to an incomplete one.
    """
    checkpoint = resume_from_checkpoint
    if checkpoint is True:
        checkpoint = last_complete_checkpoint(output_dir, rank)
        if checkpoint is None:
            raise RecordError(
                f"No complete checkpoint with an hf_prune record manifest in {output_dir!r}; there is "
                "nothing to resume. Train from the start (`trainer.train()`)."
            )
    elif checkpoint and not os.path.isfile(os.path.join(checkpoint, "trainer_state.json")):
        raise RecordError(
            f"Checkpoint {checkpoint!r} is incomplete (no trainer_state.json: the save was interrupted). Resume "
            "from an earlier checkpoint, or pass `resume_from_checkpoint=True` to pick the last complete one."
        )
    return checkpoint or None
