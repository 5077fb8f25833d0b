"""The package version and home, in one place (the package `__init__`, the records, results and cards read them)."""

__version__ = "0.1.0"

#: Where users find hf_prune: its package page (the `Homepage` of `pyproject.toml`), linked from every dataset card.
PROJECT_URL = "https://pypi.org/project/hf-prune/"
