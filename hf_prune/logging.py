"""Logging and progress bars, the Hugging Face way (`hf_prune.logging.set_verbosity_error()`, ...).

hf_prune's messages go to the `hf_prune` logger (level WARNING by default, or `HF_PRUNE_VERBOSITY`). Progress bars
(tracking, influence sweep, bucket solving, pushing) use `tqdm` and are hidden by `disable_progress_bars()`,
`HF_PRUNE_DISABLE_PROGRESS_BARS=1` or, as in the other HF libraries, `HF_HUB_DISABLE_PROGRESS_BARS=1`.
"""

from __future__ import annotations

import logging as _logging
import os
import sys
import threading


_lock = threading.Lock()
_configured = False
_progress_enabled: bool | None = None
_LEVELS = {"debug": _logging.DEBUG, "info": _logging.INFO, "warning": _logging.WARNING, "error": _logging.ERROR,
           "critical": _logging.CRITICAL}


def _root() -> _logging.Logger:
    global _configured
    root = _logging.getLogger("hf_prune")
    with _lock:
        if not _configured:
            handler = _logging.StreamHandler(sys.stderr)
            handler.setFormatter(_logging.Formatter("[hf_prune] %(levelname)s: %(message)s"))
            root.addHandler(handler)
            root.setLevel(_LEVELS.get(os.environ.get("HF_PRUNE_VERBOSITY", "warning").lower(), _logging.WARNING))
            root.propagate = False
            _configured = True
    return root


def get_logger(name: str) -> _logging.Logger:
    """A logger under the `hf_prune` namespace."""
    _root()
    return _logging.getLogger(name if name.startswith("hf_prune") else f"hf_prune.{name}")


def set_verbosity(level: int) -> None:
    _root().setLevel(level)


def set_verbosity_info() -> None:
    set_verbosity(_logging.INFO)


def set_verbosity_warning() -> None:
    set_verbosity(_logging.WARNING)


def set_verbosity_error() -> None:
    set_verbosity(_logging.ERROR)


def disable_progress_bars() -> None:
    global _progress_enabled
    _progress_enabled = False


def enable_progress_bars() -> None:
    global _progress_enabled
    _progress_enabled = True


def progress_enabled() -> bool:
    """Whether progress bars are shown (explicit setting, else the environment)."""
    if _progress_enabled is not None:
        return _progress_enabled
    for variable in ("HF_PRUNE_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
        if os.environ.get(variable, "").lower() in ("1", "true", "yes", "on"):
            return False
    return True


def progress(iterable=None, **kwargs):
    """`tqdm` over `iterable`, or a no-op wrapper when progress bars are disabled."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not progress_enabled(), **kwargs)
