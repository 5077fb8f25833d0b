"""The typed hand-off of score auxiliaries: scores declare `provides_aux`, selectors declare `needs_aux`, and the
pairing check refuses a selector whose needs the score does not provide."""

from __future__ import annotations

import numpy as np
import pytest
from record_utils import logits_for, synthetic_record

from hf_prune.config import DEFAULT_METHOD, DEFAULT_SELECTOR, resolve_method
from hf_prune.errors import InvalidArgumentError, ScoreNotComputableError
from hf_prune.scores import SCORE_REGISTRY, ScoreFunction, ScoreOutput, get_score, list_scores
from hf_prune.scores.base import provided_aux
from hf_prune.scores.dynamics import DUALScore
from hf_prune.selection import SELECTOR_REGISTRY, SelectionConfig, Selector, get_selector


class NeedsDensity(Selector):
    """Keeps the rows of highest `density` (a made-up auxiliary array)."""

    name = "aux_test_needs_density"
    needs_aux = ("density",)

    def select(self, inputs, budget):
        return np.sort(np.argsort(-inputs.aux["density"], kind="stable")[: budget.n_keep])


class WithoutDensity(ScoreFunction):
    name = "aux_test_without_density"
    provides_aux = ()

    def compute(self, record, context):
        return np.zeros(record.num_samples)


class WithDensity(ScoreFunction):
    name = "aux_test_with_density"
    provides_aux = ("density",)

    def compute(self, record, context):
        return ScoreOutput(values=np.zeros(record.num_samples), aux={"density": np.arange(record.num_samples) * 1.0})


class DualPlusExtra(DUALScore):
    """A plugin that overrides `compute` of a declaring score without declaring its own: undeclared."""

    name = "aux_test_dual_plus_extra"

    def compute(self, record, context):
        output = super().compute(record, context)
        output.aux["extra"] = np.ones(record.num_samples)
        return output


@pytest.fixture
def registered(monkeypatch):
    for cls in (WithoutDensity, WithDensity, DualPlusExtra):
        monkeypatch.setitem(SCORE_REGISTRY, cls.name, cls)
    monkeypatch.setitem(SELECTOR_REGISTRY, NeedsDensity.name, NeedsDensity)


def small_record(tmp_path):
    labels = np.array([0, 1, 0, 1, 0, 1])
    p = [[0.6, 0.7, 0.3, 0.8, 0.55, 0.9], [0.7, 0.8, 0.4, 0.9, 0.6, 0.95]]
    epochs = [[(i, logits_for(q[i], int(labels[i]))) for i in range(6)] for q in p]
    return synthetic_record(tmp_path / "record", labels, epochs, num_classes=2)


def test_the_check_refuses_a_selector_needing_an_aux_the_score_does_not_provide(registered):
    with pytest.raises(InvalidArgumentError, match=r"Selector `aux_test_needs_density` needs the auxiliary per-row "
                       r"array\(s\) `density` from the score, but score `aux_test_without_density` does not provide "
                       r"them .*Use a score that provides them \(`aux_test_with_density`\), e.g. `HFPruner\(trainer, "
                       r"method='aux_test_with_density', selector='aux_test_needs_density'\)`; or keep "
                       r"`aux_test_without_density` with a selector that needs none \(.*`topk`"):
        resolve_method("aux_test_without_density", "aux_test_needs_density", {})
    score, selector = resolve_method("aux_test_with_density", "aux_test_needs_density", {})
    assert (score.name, selector.name) == ("aux_test_with_density", "aux_test_needs_density")


def test_a_built_in_pair_that_cannot_work_is_refused_before_training():
    # el2n hands over no `p_mean`; dual_beta used to fail only at selection time.
    with pytest.raises(InvalidArgumentError, match=r"`dual_beta` needs .*`p_mean`.* score `el2n` does not provide .*"
                       r"\(its auxiliary arrays: none\)\. Use a score that provides them \(`dual`[,)]"):
        resolve_method("el2n", "dual_beta", {})
    with pytest.raises(InvalidArgumentError, match=r"`p_mean`.* score `sgd_influence` .*\(its auxiliary arrays: "
                       r"`eval_vectors`\)"):
        resolve_method("sgd_influence", "dual_beta", {})


def test_the_default_policy_passes_the_check():
    for method, selector in ((None, None), ("default", None), (DEFAULT_METHOD, DEFAULT_SELECTOR)):
        score, chosen = resolve_method(method, selector, {})
        assert (score.name, chosen.name) == ("dual", "dual_beta")
        assert set(chosen.needs_aux) <= set(provided_aux(score))
    score, chosen = resolve_method("dual", "dual_beta", {"hard_cutoff": "auto"})
    assert chosen.needs_aux == ("p_mean", "memorized")
    assert provided_aux(score) == ("p_mean", "memorized", "learned_epoch")


def test_dual_beta_declares_what_its_options_read():
    assert get_selector("dual_beta").needs_aux == ("p_mean",)  # `regime` falls back when the flags are missing
    assert get_selector("dual_beta", hard_cutoff="none").needs_aux == ("p_mean",)
    assert get_selector("dual_beta", hard_cutoff="auto").needs_aux == ("p_mean", "memorized")
    assert get_selector("topk").needs_aux == () and get_selector("mip").needs_aux == ()


def test_the_vector_scalar_mismatch_keeps_its_error():
    with pytest.raises(InvalidArgumentError, match=r"Selector `mip` optimises over per-sample influence vectors, but "
                       r"score `el2n` is a scalar score"):
        resolve_method("el2n", "mip", {})


def test_every_built_in_score_declares_its_auxiliaries():
    built_in = [name for name in list_scores() if SCORE_REGISTRY[name].__module__.startswith("hf_prune.")]
    declared = {name: provided_aux(get_score(name)) for name in built_in}
    assert declared["dual"] == ("p_mean", "memorized", "learned_epoch")
    assert declared["sgd_influence"] == declared["influence_function"] == ("eval_vectors",)
    assert declared["sgd_influence_eval"] == declared["el2n"] == ()
    assert all(value is not None for value in declared.values()), declared


def test_a_subclass_that_overrides_compute_without_declaring_is_not_checked(registered, tmp_path):
    assert provided_aux(DualPlusExtra) is None
    assert provided_aux(DUALScore) == ("p_mean", "memorized", "learned_epoch")
    resolve_method("aux_test_dual_plus_extra", "aux_test_needs_density", {})  # undeclared: left to the selector
    output = get_score("aux_test_dual_plus_extra")(small_record(tmp_path))
    assert set(output.aux) == {"p_mean", "memorized", "learned_epoch", "extra"}


def test_a_score_returning_an_undeclared_aux_is_refused(tmp_path):
    class Leaky(WithoutDensity):
        name = "aux_test_leaky"
        provides_aux = ("density",)

        def compute(self, record, context):
            return ScoreOutput(values=np.zeros(record.num_samples), aux={"density": np.zeros(record.num_samples),
                                                                         "other": np.zeros(record.num_samples)})

    record = small_record(tmp_path)
    with pytest.raises(ScoreNotComputableError, match=r"`aux_test_leaky` returned the auxiliary array\(s\) "
                       r"\['other'\] but declares `provides_aux = \('density',\)`"):
        Leaky()(record)
    assert set(get_score("dual")(record).aux) == {"p_mean", "memorized", "learned_epoch"}


def test_selection_config_defaults_are_the_default_policy():
    config = SelectionConfig()
    assert (config.method, config.selector) == (DEFAULT_METHOD, DEFAULT_SELECTOR) == ("dual", "dual_beta")
    score, selector = resolve_method(None, None, {})
    assert (score.name, selector.name) == (config.method, config.selector)
