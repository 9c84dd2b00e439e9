import numpy as np
import pytest
from scipy.stats import norm

from recmill.config import GateConfig
from recmill.evaluation.gate import FAILED_MODELS, KEEP, PROMOTE, Contender, decide, paired_p_value
from recmill.registry import Version, next_semver

CFG = GateConfig(margin=0.01, level=0.05, bootstrap_samples=2000)
USERS = [f"u{i}" for i in range(400)]


def contender(label, values, **kw):
    return Contender(label, dict(zip(USERS, values)), **kw)


def test_paired_t_matches_the_formula():
    champion = np.array([0.1, 0.3, 0.2, 0.4, 0.0])
    challenger = np.array([0.3, 0.3, 0.5, 0.5, 0.1])
    d = challenger - champion  # 0.2, 0, 0.3, 0.1, 0.1: mean 0.14, sample sd 0.1140
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    from scipy.stats import t as student

    assert paired_p_value(champion, challenger, "paired_t", 0, 0) == pytest.approx(student.sf(t, df=4))


def test_bootstrap_agrees_with_the_normal_approximation_on_many_users():
    rng = np.random.default_rng(0)
    champion = rng.uniform(0, 1, 2000)
    challenger = champion + rng.normal(0.01, 0.2, 2000)
    d = challenger - champion
    expected = norm.sf(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))
    assert paired_p_value(champion, challenger, "bootstrap", 4000, 1) == pytest.approx(expected, abs=0.02)


def test_identical_values_are_never_significant():
    values = np.linspace(0, 1, 50)
    assert paired_p_value(values, values, "bootstrap", 500, 0) == 1.0
    assert paired_p_value(values, values, "paired_t", 500, 0) == 1.0


def test_the_first_challenger_is_promoted():
    d = decide(None, contender("v1 (als 1.0.0)", [0.2] * 400), CFG, "ndcg@10", 0)
    assert d.decision == PROMOTE and d.reasons == ["no champion yet: v1 (als 1.0.0) is the first"]


def test_the_same_model_again_keeps_the_champion():
    values = np.random.default_rng(2).uniform(0, 1, 400)
    d = decide(contender("v1 (als 1.0.0)", values), contender("v2 (als 1.0.1)", values), CFG, "ndcg@10", 0)
    assert d.decision == KEEP and d.p_value == 1.0
    assert d.reasons[0].startswith("v2 (als 1.0.1) does not beat v1 (als 1.0.0) by the 1% margin: ndcg@10")
    assert "+0.0%" in d.reasons[0]
    assert d.reasons[1] == "the difference is not significant: p = 1.0000 >= 0.05 (bootstrap)"


def test_a_clearly_better_model_is_promoted_and_a_worse_one_is_not():
    rng = np.random.default_rng(3)
    old = rng.uniform(0, 0.5, 400)
    better = decide(contender("v1", old), contender("v2", old + rng.uniform(0, 0.2, 400)), CFG, "ndcg@10", 0)
    assert better.decision == PROMOTE and better.p_value < 0.01 and "guardrails hold" in better.reasons[0]
    worse = decide(contender("v1", old), contender("v3", old * 0.5), CFG, "ndcg@10", 0)
    assert worse.decision == KEEP and worse.challenger_value < worse.champion_value


def test_guardrails_and_drift_block_a_better_model():
    rng = np.random.default_rng(4)
    old = rng.uniform(0, 0.5, 400)
    new = old + 0.1
    d = decide(
        contender("v1", old, coverage=0.5, diversity=0.8, fairness_gaps={"age_group": 0.21, "segment": 0.3}),
        contender("v2", new, coverage=0.3, diversity=0.7, fairness_gaps={"age_group": 0.25, "gender": 0.05, "segment": 0.28}),
        CFG, "ndcg@10", 0, severe_drift="events: 5 of 6 columns drifted",
    )
    assert d.decision == KEEP
    assert d.reasons == [
        "coverage falls from 0.5000 to 0.3000, more than the allowed 20%",
        "equal-opportunity gap across age_group is 0.2500, above the limit 0.2 (champion: 0.2100)",
        "severe drift blocks automatic promotion: events: 5 of 6 columns drifted",
    ]


def version(semver, architecture="a", settings_hash="s"):
    return Version("1", "als", semver, "r", "m", None, architecture, settings_hash, "ndcg@10", None, None, (), False, 0)


@pytest.mark.parametrize(
    "previous, architecture, settings_hash, expected",
    [
        (None, "a", "s", "1.0.0"),
        (version("1.2.3"), "a", "s", "1.2.4"),  # retrained
        (version("1.2.3"), "a", "t", "1.3.0"),  # new settings
        (version("1.2.3"), "b", "t", "2.0.0"),  # new architecture
    ],
)
def test_semantic_versions(previous, architecture, settings_hash, expected):
    assert next_semver(previous, architecture, settings_hash) == expected


def test_a_model_that_failed_to_train_keeps_the_champion_but_not_a_first_promotion():
    rng = np.random.default_rng(5)
    old = rng.uniform(0, 0.5, 400)
    failed = {"ncf": "RuntimeError: out of memory"}
    d = decide(contender("v1", old), contender("v2", old + 0.2), CFG, "ndcg@10", 0, failed=failed)
    assert d.decision == KEEP and d.reasons == [f"{FAILED_MODELS}: ncf (RuntimeError: out of memory)"]
    assert decide(None, contender("v2", old), CFG, "ndcg@10", 0, failed=failed).decision == PROMOTE  # nothing to keep
