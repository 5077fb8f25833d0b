"""The library's default method, in a module that imports nothing, so that both the front door
([`hf_prune.config.resolve_method`]) and the selection config ([`hf_prune.selection.SelectionConfig`]) read the same
names without an import cycle or a heavy import."""

#: What `HFPruner(trainer)` uses when neither `method` nor `selector` is given: DUAL scores (arXiv 2502.06905) kept
#: by the `dual_beta` selector with its own defaults (ratio-adaptive Beta weights drawn systematically, the rows a
#: memorising run fit set aside, a class floor; see `DualBetaSelector`). How it was chosen and where it is weak:
#: docs/methods.md and benchmarks/README.md.
DEFAULT_METHOD = "dual"
DEFAULT_SELECTOR = "dual_beta"
