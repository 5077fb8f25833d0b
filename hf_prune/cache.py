"""Where hf_prune writes what the user did not ask to be written next to their own files.

The root is `$HF_PRUNE_CACHE`, else `<HF_HOME>/hf_prune` (by default `~/.cache/huggingface/hf_prune`), next to the
caches of the other Hugging Face libraries.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


def cache_root() -> Path:
    """The hf_prune cache directory (not created)."""
    configured = os.environ.get("HF_PRUNE_CACHE")
    if configured:
        return Path(configured).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "hf_prune"


def new_run_dir(kind: str = "runs") -> Path:
    """A fresh, empty directory under the cache for one run (time-stamped and unique, so runs never share one)."""
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = cache_root() / kind / name
    path.mkdir(parents=True, exist_ok=False)
    return path
