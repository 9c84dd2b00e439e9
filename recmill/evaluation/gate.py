"""The promotion gate: does the challenger really beat the champion?

Both are scored on the same held-out users. The challenger replaces the champion only if
all of these hold, and the reasons say which did not:

1. its mean of the primary metric beats the champion's by the relative ``margin``;
2. the difference is significant under a one-sided paired test over users (bootstrap of
   the mean per-user difference, or the paired t-test) at ``level``;
3. the guardrails hold: coverage and diversity fall by at most their allowed share of the
   champion's, and no equal-opportunity gap both exceeds its limit and is wider than the
   champion's (a gap the champion already had does not block a better model);
4. the run's data did not drift severely (a person decides then).

With no champion yet, the challenger is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recmill.config import GateConfig

PROMOTE, KEEP = "promote", "keep"
FAILED_MODELS = "models failed to train, so the champion stays"
HELD_BY_DRIFT = "severe drift blocks automatic promotion"


@dataclass(frozen=True)
class Contender:
    label: str  # e.g. "v7 (als 1.0.2)"
    per_user: dict[str, float]  # user -> primary metric on the shared holdout
    coverage: float | None = None
    diversity: float | None = None
    fairness_gaps: dict[str, float] = field(default_factory=dict)  # attribute -> equal-opportunity gap

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.per_user.values()))) if self.per_user else 0.0


@dataclass(frozen=True)
class Decision:
    decision: str  # PROMOTE or KEEP
    reasons: list[str]
    metric: str
    champion_value: float | None
    challenger_value: float
    p_value: float | None


def paired_p_value(champion: np.ndarray, challenger: np.ndarray, test: str, samples: int, seed: int) -> float:
    """One-sided p-value of 'the challenger is better' from paired per-user values."""
    diff = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    if len(diff) < 2 or np.allclose(diff, 0):
        return 1.0
    if test == "paired_t":
        from scipy.stats import ttest_rel

        return float(ttest_rel(challenger, champion, alternative="greater").pvalue)
    # bootstrap: how often a resampled mean difference is not above zero
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # 100 resamples at a time bounds the memory
        n = min(100, samples - start)
        means[start : start + n] = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    return float((np.sum(means <= 0) + 1) / (samples + 1))


def guardrail_failures(champion: Contender, challenger: Contender, cfg: GateConfig) -> list[str]:
    failures = []
    for name, allowed in (("coverage", cfg.max_coverage_drop), ("diversity", cfg.max_diversity_drop)):
        old, new = getattr(champion, name), getattr(challenger, name)
        if old is not None and new is not None and new < old * (1 - allowed):
            failures.append(f"{name} falls from {old:.4f} to {new:.4f}, more than the allowed {allowed:.0%}")
    for attribute, gap in sorted(challenger.fairness_gaps.items()):
        before = champion.fairness_gaps.get(attribute)
        if gap > cfg.max_fairness_gap and (before is None or gap > before):
            was = "" if before is None else f" (champion: {before:.4f})"
            failures.append(f"equal-opportunity gap across {attribute} is {gap:.4f}, above the limit {cfg.max_fairness_gap}{was}")
    return failures


def decide(
    champion: Contender | None, challenger: Contender, cfg: GateConfig, metric: str, seed: int, severe_drift: str | None = None,
    failed: dict[str, str] | None = None,
) -> Decision:
    """Promote or keep, with every reason; severe_drift is the drift summary when the data
    moved severely, failed the models that failed to train (model -> error): a run with
    either does not replace a champion."""
    if champion is None:
        return Decision(PROMOTE, [f"no champion yet: {challenger.label} is the first"], metric, None, challenger.mean, None)
    users = sorted(set(champion.per_user) & set(challenger.per_user))
    old = np.array([champion.per_user[u] for u in users])
    new = np.array([challenger.per_user[u] for u in users])
    old_mean, new_mean = (float(old.mean()), float(new.mean())) if users else (champion.mean, challenger.mean)
    p = paired_p_value(old, new, cfg.test, cfg.bootstrap_samples, seed)
    reasons = []
    gain = (new_mean - old_mean) / abs(old_mean) if old_mean else (np.inf if new_mean > 0 else 0.0)
    compared = f"{metric} {new_mean:.4f} vs {old_mean:.4f} over {len(users)} users ({gain:+.1%})"
    if gain < cfg.margin:
        reasons.append(f"{challenger.label} does not beat {champion.label} by the {cfg.margin:.0%} margin: {compared}")
    if p >= cfg.level:
        reasons.append(f"the difference is not significant: p = {p:.4f} >= {cfg.level} ({cfg.test})")
    reasons += guardrail_failures(champion, challenger, cfg)
    if severe_drift:
        reasons.append(f"{HELD_BY_DRIFT}: {severe_drift}")
    if failed:
        reasons.append(f"{FAILED_MODELS}: " + "; ".join(f"{model} ({error})" for model, error in failed.items()))
    if reasons:
        return Decision(KEEP, reasons, metric, old_mean, new_mean, p)
    why = f"{challenger.label} beats {champion.label}: {compared}, p = {p:.4f} < {cfg.level}; guardrails hold"
    return Decision(PROMOTE, [why], metric, old_mean, new_mean, p)
