"""The bucketed python-mip selector: the papers' discrete optimisation with exact budgets and side constraints.

Per group (a bucket, or one class of a bucket under proportional quotas) the program is

```
minimise   Σ_k t_k                                 (‖Σ_{i picked} y_i‖₁ over the coordinates k)
subject to −t_k ≤ Σ_i y_ik x_i ≤ t_k              for every coordinate k
           Σ_i x_i = q                             (cardinality-guaranteed program)
           or ‖Σ_i y_i x_i‖₁ ≤ ε/B, maximise Σ x   (generalization-guaranteed program)
           per-class, per-stratum and cost constraints on the kept rows (optional)
           x_i ∈ {0, 1}
```

**How the L1 linearisation bounds the L2 guarantee.** `‖v‖₂ ≤ ‖v‖₁`, so a set whose summed influence has
`‖·‖₁ ≤ ε/B` also has `‖·‖₂ ≤ ε/B`, and the union of the `B` buckets stays within `ε` by the triangle inequality.
When the vectors have more than `max_coordinates` columns (exact head vectors), the program uses the group's leading
principal coordinates instead: the L1 objective is then a proxy, and every MIP solution is checked on the full
vectors — the greedy warm start (exact L2) is kept whenever the MIP does not improve the full-vector L2 objective, and
in ε mode a solution whose full-vector L2 norm exceeds `ε/B` is replaced by the greedy's.

Every solver status is mapped and recorded per bucket (`optimal`, `feasible` with the gap at the time limit,
`infeasible`, `no_solution`, `error`, `time_limited`); a bucket the solver fails on falls back to the greedy with one warning; if CBC
cannot be loaded at all, the whole selection falls back to the greedy with an error-level log line saying how to fix
it.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from .. import logging
from ..errors import InvalidArgumentError, SelectionError
from ..logging import progress
from ..validation import check_int, check_number
from .base import Budget, SelectionInputs, SelectionOutput, allocate, register_selector
from .vector import GroupProblem, VectorSelector, greedy_solve, l2_of


logger = logging.get_logger(__name__)

SOLVERS = ("cbc", "highs")


def is_mip_available(solver: str = "cbc") -> tuple[bool, str]:
    """Whether python-mip can build a model with `solver`, and the reason if not."""
    try:
        import mip

        mip.Model(solver_name=mip.CBC if solver == "cbc" else mip.HIGHS)
    except Exception as err:  # noqa: BLE001 - any load failure of the native library ends here
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def _reduce(Y: np.ndarray, max_coordinates: int) -> tuple[np.ndarray, bool]:
    if Y.shape[1] <= max_coordinates:
        return Y, False
    # Leading principal directions of the group (uncentred: the sum, not the spread, is what is minimised).
    _, _, vt = np.linalg.svd(Y, full_matrices=False)
    return Y @ vt[:max_coordinates].T, True


def has_side_constraints(problem: GroupProblem) -> bool:
    """Whether a group carries constraints the greedy cannot honour (strata coverage, cost budget)."""
    return problem.strata is not None or problem.cost is not None


def _status_name(mip, status, seconds: float, time_limit: float) -> str:
    """The recorded name of a solver status; a run stopped by the safety cap (not the node budget) is
    `time_limited`, the one status whose result can depend on timing."""
    name = {
        mip.OptimizationStatus.OPTIMAL: "optimal",
        mip.OptimizationStatus.FEASIBLE: "feasible",
        mip.OptimizationStatus.INFEASIBLE: "infeasible",
        mip.OptimizationStatus.INT_INFEASIBLE: "infeasible",
        mip.OptimizationStatus.NO_SOLUTION_FOUND: "no_solution",
        mip.OptimizationStatus.UNBOUNDED: "error",
        mip.OptimizationStatus.ERROR: "error",
    }.get(status, "error")
    if name in ("feasible", "no_solution") and seconds >= time_limit:
        name = "time_limited"
    return name


def _add_l1_program(mip, model, x: list, Yr: np.ndarray, problem: GroupProblem) -> None:
    """The L1 linearisation `−t_k ≤ Σ_i y_ik x_i ≤ t_k` with either the cardinality-guaranteed program (pick exactly
    `count` rows, minimise `Σ t_k`) or the generalization-guaranteed one (`Σ t_k ≤ ε`, pick as many as possible)."""
    t = [model.add_var(lb=0.0) for _ in range(Yr.shape[1])]
    for k in range(Yr.shape[1]):
        expr = mip.LinExpr(variables=x, coeffs=Yr[:, k].tolist())
        model.add_constr(expr - t[k] <= 0)
        model.add_constr(-expr - t[k] <= 0)
    if problem.count is not None:
        model.add_constr(mip.xsum(x) == problem.count)
        model.objective = mip.xsum(t)
    else:
        # ε mode: as many removed rows as possible with ‖Σ y‖₁ ≤ ε (L2 ≤ L1 keeps the guarantee).
        model.add_constr(mip.xsum(t) <= problem.epsilon)
        model.objective = -mip.xsum(x)


def _add_row_constraints(mip, model, x: list, problem: GroupProblem) -> None:
    """Constraints on which rows are picked: per-class bounds, and on the kept side (the picked rows, or the others
    when the picked side is the removed one) stratum coverage and the cost budget."""
    m = len(x)
    for label, (lo, hi) in problem.pick_bounds.items():
        members = [x[i] for i in np.flatnonzero(problem.labels == label)]
        if lo > 0:
            model.add_constr(mip.xsum(members) >= lo)
        if hi < len(members):
            model.add_constr(mip.xsum(members) <= hi)
    kept_expr = (lambda rows: mip.xsum(x[i] for i in rows)) if problem.build_kept else (
        lambda rows: len(rows) - mip.xsum(x[i] for i in rows)
    )
    if problem.strata is not None:
        for stratum, minimum in problem.strata_min_kept.items():
            rows = np.flatnonzero(problem.strata == stratum)
            if minimum > 0 and len(rows):
                model.add_constr(kept_expr(rows) >= min(minimum, len(rows)))
    if problem.cost is not None and problem.max_cost is not None:
        cost = problem.cost
        if problem.build_kept:
            model.add_constr(mip.xsum(float(cost[i]) * x[i] for i in range(m)) <= problem.max_cost)
        else:
            model.add_constr(float(cost.sum()) - mip.xsum(float(cost[i]) * x[i] for i in range(m)) <= problem.max_cost)


def _build_model(mip, problem: GroupProblem, Yr: np.ndarray, solver: str, threads: int, seed: int):
    """The group's program on the (possibly reduced) coordinates `Yr`: returns the model and its binary variables."""
    model = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC if solver == "cbc" else mip.HIGHS)
    model.verbose = 0
    model.threads = threads
    with contextlib.suppress(Exception):  # not every backend exposes a seed
        model.seed = seed
    x = [model.add_var(var_type=mip.BINARY) for _ in range(len(problem.Y))]
    _add_l1_program(mip, model, x, Yr, problem)
    _add_row_constraints(mip, model, x, problem)
    return model, x


def _kept_solution(problem: GroupProblem, model, x: list, facts: dict[str, Any], greedy: np.ndarray,
                   needs_side: bool) -> np.ndarray:
    """The rows the group picks: the MIP's solution when the group has side constraints, or when it lowers the full
    vectors' L2 objective (and stays within `ε`); else the greedy's. Records the MIP's objective, gap, L2 and the
    choice in `facts`."""
    if facts["status"] in ("optimal", "feasible", "time_limited") and model.num_solutions:
        picked = np.flatnonzero(np.array([v.x for v in x]) > 0.5)
        facts["mip_objective"] = float(model.objective_value)
        bound = model.objective_bound
        value = model.objective_value
        facts["gap"] = float(abs(value - bound) / max(abs(value), 1e-12)) if bound is not None else None
        mip_obj = l2_of(problem.Y, picked)
        facts["mip_l2"] = mip_obj
        within_eps = problem.epsilon is None or mip_obj <= problem.epsilon + 1e-9
        better = (mip_obj < facts["greedy_objective"] - 1e-12) if problem.count is not None else (
            len(picked) > len(greedy))
        if needs_side or (within_eps and better):
            facts["kept_solution"] = "mip"
            return picked
    facts["kept_solution"] = "greedy"
    return greedy


def solve_group(problem: GroupProblem, solver: str, node_limit: int, time_limit: float, threads: int,
                max_coordinates: int, seed: int, solve: str = "always") -> dict[str, Any]:
    """Greedy (+ swaps) warm start, then the MIP for one group; returns the picked positions and the solver facts.

    The MIP runs under a deterministic node budget (`node_limit`) so that results do not depend on machine load or
    on how many workers share the CPU; `time_limit` is only a safety cap (a bucket that hits it is marked
    `time_limited`, and only then can the result depend on timing).
    """
    start = time.perf_counter()
    m = len(problem.Y)
    greedy = greedy_solve(problem)
    facts: dict[str, Any] = {"greedy_objective": l2_of(problem.Y, greedy), "rows": m}
    needs_side = has_side_constraints(problem)
    if solve == "constrained" and not needs_side:
        return {**facts, "picked": greedy, "status": "greedy_kept", "kept_solution": "greedy",
                "seconds": time.perf_counter() - start}
    try:
        import mip
    except Exception as err:  # noqa: BLE001
        return {**facts, "picked": greedy, "status": "error", "message": str(err),
                "seconds": time.perf_counter() - start, "kept_solution": "greedy"}
    Yr, reduced = _reduce(problem.Y, max_coordinates)
    facts["coordinates"] = int(Yr.shape[1])
    facts["reduced"] = reduced
    try:
        model, x = _build_model(mip, problem, Yr, solver, threads, seed)
        if not needs_side:
            model.start = [(x[i], 1.0) for i in greedy] + [(x[i], 0.0) for i in np.setdiff1d(np.arange(m), greedy)]
        status = model.optimize(max_nodes=node_limit, max_seconds=time_limit)
    except Exception as err:  # noqa: BLE001 - solver or model errors fall back to the greedy
        return {**facts, "picked": greedy, "status": "error", "message": f"{type(err).__name__}: {err}",
                "seconds": time.perf_counter() - start, "kept_solution": "greedy"}
    facts["seconds"] = time.perf_counter() - start
    facts["status"] = _status_name(mip, status, facts["seconds"], time_limit)
    picked = _kept_solution(problem, model, x, facts, greedy, needs_side)
    return {**facts, "picked": picked}


def _solve_star(args):
    return solve_group(*args)


@register_selector
class MIPSelector(VectorSelector):
    """`mip`: python-mip (CBC by default, HiGHS with `solver="highs"`) per bucket, warm-started from the greedy.

    Options:
        objective (`str`): `"mean_match"` (default) or `"min_norm"` (see `hf_prune.selection.vector`).
        bucket_size (`int`): Rows per bucket (buckets are class-stratified and seeded). Default: 1,000 ×
            the number of classes with `class_quota="proportional"` (per-class groups of ~1,000 rows), 2,000 with
            `class_quota="none"` (one group per bucket).
        node_limit (`int`): Branch-and-bound nodes per bucket (default 50): a deterministic work budget.
        time_limit (`float`): Safety cap in seconds per bucket (default 10.0); a bucket that hits it is marked
            `time_limited`.
        threads (`int`): Solver threads per bucket (default 1, which keeps CBC deterministic).
        n_jobs (`int`): Local worker processes (default 1). Under `torch.distributed` with several processes the
            ranks split the buckets instead. The selection is identical for any number of workers.
        solver (`str`): `"cbc"` or `"highs"` (needs `pip install highspy==1.15.1`).
        max_coordinates (`int`): Objective coordinates per bucket (default 64; more columns are reduced to the
            bucket's leading principal directions, with the result checked on the full vectors).
        solve (`str`): `"constrained"` (default) runs the MIP on buckets with side constraints (strata, cost) and
            keeps the greedy+swap solution elsewhere; `"always"` runs it on every bucket. On unconstrained buckets
            the solver seldom improves the greedy+swap solution and takes orders of magnitude longer
            (`scripts/bench_selection.py`), so it is spent only where it is needed.
        max_per_class (`dict`, *optional*): class id -> maximum kept rows of that class. With it every class keeps
            its proportional share of the budget, at most its ceiling, and what a capped class cannot keep goes to
            the others in proportion to their sizes; the objective picks the rows inside each class. Needs a ratio
            (not `epsilon`); ceilings that cannot hold the budget are an error.
        strata (`str` or array, *optional*): A dataset column (or per-row array) of stratum ids, with
            `min_per_stratum` (`int`): every stratum keeps at least that many rows (coverage constraint).
        cost (`str` or array, *optional*): A dataset column (or per-row array) of costs (e.g. token counts), with
            `max_cost` (`float`): the kept set's total cost stays within it (split over buckets by their share).

    Without side constraints, the MIP's solution replaces the warm start only when it lowers the objective on the
    full vectors; with side constraints (which the greedy cannot express) the MIP's feasible solution is used.
    """

    name = "mip"

    def __init__(
        self,
        objective: str = "mean_match",
        bucket_size: int | None = None,
        node_limit: int = 50,
        time_limit: float = 10.0,
        threads: int = 1,
        n_jobs: int = 1,
        solver: str = "cbc",
        max_coordinates: int = 64,
        max_per_class: dict[int, int] | None = None,
        strata: Any = None,
        min_per_stratum: int = 0,
        cost: Any = None,
        max_cost: float | None = None,
        solve: str = "constrained",
        **options: Any,
    ):
        super().__init__(objective=objective, bucket_size=bucket_size, **options)
        if solve not in ("always", "constrained"):
            raise InvalidArgumentError(f"`solve` must be 'always' or 'constrained', got {solve!r}.")
        self.solve = solve
        check_number("time_limit", time_limit, 0, low_open=True, finite=True, accepted="a positive number of seconds")
        for option, value in (("node_limit", node_limit), ("threads", threads), ("n_jobs", n_jobs),
                              ("max_coordinates", max_coordinates)):
            check_int(option, value, minimum=1)
        if solver not in SOLVERS:
            raise InvalidArgumentError(f"`solver` must be one of {SOLVERS}, got {solver!r}.")
        if (cost is None) != (max_cost is None):
            raise InvalidArgumentError("`cost` and `max_cost` go together: give both or neither.")
        if strata is None and min_per_stratum:
            raise InvalidArgumentError("`min_per_stratum` needs `strata` (a column name or per-row array).")
        self.node_limit = int(node_limit)
        self.time_limit = float(time_limit)
        self.threads = int(threads)
        self.n_jobs = int(n_jobs)
        self.solver = solver
        self.max_coordinates = int(max_coordinates)
        self.max_per_class = dict(max_per_class or {})
        self.strata = strata
        self.min_per_stratum = int(min_per_stratum)
        self.cost = cost
        self.max_cost = None if max_cost is None else float(max_cost)

    def options(self) -> dict[str, Any]:
        def describe(value):
            return value if (value is None or isinstance(value, str)) else "array"

        return {
            **super().options(), "node_limit": self.node_limit, "time_limit": self.time_limit,
            "threads": self.threads, "n_jobs": self.n_jobs, "solver": self.solver,
            "max_coordinates": self.max_coordinates,
            "max_per_class": {str(k): v for k, v in self.max_per_class.items()}, "strata": describe(self.strata),
            "min_per_stratum": self.min_per_stratum, "cost": describe(self.cost), "max_cost": self.max_cost,
            "solve": self.solve,
        }

    # ------------------------------------------------------------------ problems
    def _column(self, inputs: SelectionInputs, value: Any, what: str) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, str):
            if inputs.dataset is None or value not in inputs.dataset.column_names:
                raise InvalidArgumentError(f"`{what}={value!r}` is not a column of the training set.")
            array = np.asarray(inputs.dataset.with_format(None)[value])
        else:
            array = np.asarray(value)
        if array.shape != (inputs.num_samples,):
            raise InvalidArgumentError(f"`{what}` must hold one value per training row ({inputs.num_samples}).")
        return array

    def class_ceilings(self, labels: np.ndarray) -> np.ndarray:
        """`max_per_class` as one ceiling per class (sorted class order; a class not named has none), checked."""
        classes, sizes = np.unique(labels, return_counts=True)
        ceilings = sizes.copy()
        for key, maximum in self.max_per_class.items():
            try:
                label = int(key)  # saved results store the keys as text
            except (TypeError, ValueError):
                label = None
            if label is None or label not in classes or (isinstance(key, float) and key != label):
                raise InvalidArgumentError(
                    f"`max_per_class` names class {key!r}, which is not a class id of the training set "
                    f"({classes.tolist()}); its keys are class ids, e.g. `max_per_class={{{int(classes[0])}: 100}}`."
                )
            check_int(f"max_per_class[{label}]", maximum, minimum=0)
            position = int(np.searchsorted(classes, label))
            ceilings[position] = min(ceilings[position], int(maximum))
        return ceilings

    class_counts_by = "proportional, capped by max_per_class"

    def class_counts(self, inputs: SelectionInputs, budget: Budget) -> np.ndarray | None:
        """With `max_per_class`: every class its proportional share (at least `min_per_class`), at most its ceiling;
        what a capped class cannot keep goes to the others in proportion to their sizes (largest remainders). The
        objective then picks the rows inside each class."""
        if not self.max_per_class:
            return None
        if budget.epsilon is not None:
            raise InvalidArgumentError(
                "`max_per_class` caps the kept rows of each class, but with `epsilon` the number of rows kept is not "
                "fixed: give a ratio (`prune(0.5)`), or drop `max_per_class`."
            )
        labels = inputs.labels
        classes, sizes = np.unique(labels, return_counts=True)
        ceilings = self.class_ceilings(labels)
        if ceilings.sum() < budget.n_keep:
            raise SelectionError(
                f"`max_per_class` lets at most {int(ceilings.sum())} rows be kept, but the ratio keeps "
                f"{budget.n_keep}: raise the ceilings or prune more."
            )
        floors = np.minimum(np.full(len(classes), inputs.min_per_class), sizes)
        clash = np.flatnonzero(floors > ceilings)
        if len(clash):
            c = clash[0]
            raise SelectionError(
                f"`max_per_class` lets class {classes[c]!r} keep at most {int(ceilings[c])} rows, but `min_per_class="
                f"{inputs.min_per_class}` asks for {int(floors[c])}: lower one of them."
            )
        return allocate(ceilings, budget.n_keep, floors, weights=sizes)

    def build_problems(self, inputs, budget, groups, build_kept) -> list[GroupProblem]:
        problems = super().build_problems(inputs, budget, groups, build_kept)
        strata = self._column(inputs, self.strata, "strata")
        cost = self._column(inputs, self.cost, "cost")
        if cost is not None:
            cost = cost.astype(np.float64)
            if not np.isfinite(cost).all():
                raise InvalidArgumentError("`cost` has non-finite values.")
        if strata is not None:
            targets: list[dict[int, int]] = [{} for _ in groups]
            if self.min_per_stratum:
                values, counts = np.unique(strata, return_counts=True)
                small = values[counts < self.min_per_stratum]
                if len(small):
                    logger.warning(
                        f"hf_prune: stratum/strata {small[:5].tolist()} hold fewer rows than `min_per_stratum="
                        f"{self.min_per_stratum}`; each keeps all its rows instead (lower `min_per_stratum` to "
                        "silence this)."
                    )
                for stratum in values:
                    sizes = np.array([(strata[g.rows] == stratum).sum() for g in groups])
                    for target, part in zip(targets, allocate(sizes, int(min(self.min_per_stratum, sizes.sum())))):
                        if part:
                            target[int(stratum)] = int(part)
            for problem, group, target in zip(problems, groups, targets):
                problem.strata, problem.strata_min_kept = strata[group.rows], target
        if cost is not None:
            total = float(cost.sum())
            for problem, group in zip(problems, groups):
                problem.cost = cost[group.rows]
                problem.max_cost = self.max_cost * float(cost[group.rows].sum()) / max(total, 1e-30)
        return problems

    # ------------------------------------------------------------------ solving
    def _solve_all(self, problems: list[GroupProblem], seed: int) -> list[dict[str, Any]]:
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        jobs = [(p, self.solver, self.node_limit, self.time_limit, self.threads, self.max_coordinates,
                 seed + p.group_id, self.solve) for p in problems]
        if distributed:
            rank, world = dist.get_rank(), dist.get_world_size()
            mine = {i: solve_group(*jobs[i]) for i in range(rank, len(jobs), world)}
            gathered: list[dict | None] = [None] * world
            dist.all_gather_object(gathered, mine)
            merged: dict[int, dict] = {}
            for part in gathered:
                merged.update(part)
            return [merged[i] for i in range(len(jobs))]
        if self.n_jobs > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=self.n_jobs) as pool:
                return list(progress(pool.map(_solve_star, jobs, chunksize=max(1, len(jobs) // (4 * self.n_jobs))),
                                     total=len(jobs), desc="MIP buckets", unit="group", leave=False))
        return [solve_group(*job) for job in progress(jobs, desc="MIP buckets", unit="group", leave=False)]

    def select(self, inputs: SelectionInputs, budget: Budget) -> SelectionOutput:
        start = time.perf_counter()
        groups, build_kept, quota = self.plan(inputs, budget)
        problems = self.build_problems(inputs, budget, groups, build_kept)
        available, reason = is_mip_available(self.solver)
        if not available:
            install = "pip install mip" if self.solver == "cbc" else 'pip install "highspy==1.15.1"'
            logger.error(
                f"hf_prune: the {self.solver.upper()} solver could not be loaded ({reason}); the selection falls back "
                f"to the greedy for every bucket. Fix: `{install}` (CBC ships with python-mip; on Linux aarch64 "
                "python-mip has no bundled CBC: use `solver='highs'`)."
            )
            results = []
            for problem in problems:
                picked = greedy_solve(problem)
                results.append({"picked": picked, "status": "solver_unavailable", "kept_solution": "greedy",
                                "greedy_objective": l2_of(problem.Y, picked)})
        else:
            results = self._solve_all(problems, inputs.seed)
        failures = [r for r in results if r["status"] in ("error", "no_solution")]
        if failures:
            warnings.warn(
                f"hf_prune: the MIP solver failed on {len(failures)} of {len(results)} bucket group(s) "
                f"(first: {failures[0]['status']}, {failures[0].get('message', 'no solution within the limits')}); "
                "those groups use the greedy solution.",
                RuntimeWarning,
                stacklevel=3,
            )
        side = any(p.strata is not None or p.cost is not None for p in problems)
        infeasible = [p for p, r in zip(problems, results) if r["status"] == "infeasible"]
        if infeasible and side:
            p = infeasible[0]
            raise SelectionError(
                f"The side constraints are infeasible in bucket {p.bucket} ({len(p.Y)} rows): e.g. `max_cost` is "
                "too small for the rows that must be kept, or `min_per_stratum` exceeds what the budget allows. "
                "Relax them or prune less."
            )
        limited = sum(r["status"] == "time_limited" for r in results)
        if limited:
            logger.warning(
                f"hf_prune: {limited} of {len(results)} MIP bucket group(s) hit the {self.time_limit:g} s safety cap "
                "before the node budget (status 'time_limited', gap recorded); their result can depend on timing."
            )
        facts = [
            {key: r.get(key) for key in ("status", "gap", "seconds", "kept_solution", "greedy_objective")}
            | {"mip_objective_l2": r.get("mip_l2"), "mip_objective_l1": r.get("mip_objective"),
               "message": r.get("message")}
            for r in results
        ]
        picks, polished = self.polish(problems, [r["picked"] for r in results], budget)
        kept, statuses = self.assemble(groups, problems, picks, facts)
        greedy_total = sum(r.get("greedy_objective") or 0.0 for r in results)
        chosen_total = sum(
            (r.get("mip_l2") if r.get("kept_solution") == "mip" else r.get("greedy_objective")) or 0.0
            for r in results
        )
        info = self.report(inputs, groups, kept, {
            "side": "kept" if build_kept else "removed", "class_quota": quota, "solver": self.solver,
            "seconds": time.perf_counter() - start, "buckets_time_limited": limited,
            "groups_improved_by_mip": int(sum(r.get("kept_solution") == "mip" for r in results)),
            "sum_group_objective_greedy": greedy_total, "sum_group_objective_chosen": chosen_total,
            "workers": self.n_jobs, "fallback_all": not available, "global_swaps": polished,
        })
        if budget.epsilon is not None:
            info["epsilon_per_bucket"] = problems[0].epsilon if problems else None
        return SelectionOutput(kept=kept, buckets=statuses, info=info)
