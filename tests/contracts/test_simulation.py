"""Agent simulation: observed rates agree with the exact table; honesty pays, dishonesty costs."""

from __future__ import annotations

import importlib.util
import sys
from fractions import Fraction
from math import exp, lgamma, log, log1p
from pathlib import Path

import pytest

from contracts import DEFAULT_PARAMS
from contracts.simulation import COPIER, LIAR, SILENT, simulate

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("security_table", ROOT / "scripts" / "security_table.py")
security_table = importlib.util.module_from_spec(spec)
sys.modules["security_table"] = security_table
spec.loader.exec_module(security_table)

POOL = 60
ALPHA = 1e-4  # two-sided: a correct implementation fails this check once in 10,000 seeds


def binomial_p_value(observed: int, trials: int, p: float) -> float:
    """Exact two-sided p-value: total probability of outcomes no more likely than the observed one."""
    if p in (0.0, 1.0):
        return 1.0 if observed == round(p * trials) else 0.0
    log_pmf = [lgamma(trials + 1) - lgamma(i + 1) - lgamma(trials - i + 1) + i * log(p) + (trials - i) * log1p(-p)
               for i in range(trials + 1)]
    cut = log_pmf[observed] + 1e-9
    return min(1.0, sum(exp(q) for q in log_pmf if q <= cut))


def _table(share: Fraction, k: int):
    return security_table.analyse(share, k, DEFAULT_PARAMS["growth"], DEFAULT_PARAMS["quorum_bps"],
                                  DEFAULT_PARAMS["max_rounds"], pool=POOL)


@pytest.mark.parametrize("share", [Fraction(1, 10), Fraction(1, 3)], ids=["0.1", "1/3"])
def test_wrong_and_unresolved_rates_fall_inside_the_tables_confidence_interval(share):
    jobs = 1200
    result = simulate(float(share), jobs, pool=POOL, seed=7)
    expected = _table(share, 3)
    assert binomial_p_value(result.wrong, jobs, expected.wrong) > ALPHA, (result.wrong, expected.wrong * jobs)
    assert binomial_p_value(result.unresolved, jobs, expected.unresolved) > ALPHA, (
        result.unresolved, expected.unresolved * jobs)


@pytest.mark.parametrize("share", [0.1, 1 / 3], ids=["0.1", "1/3"])
def test_honest_workers_gain_and_dishonest_ones_lose(share):
    result = simulate(share, 400, pool=POOL, seed=3)
    assert result.mean_net(honest=True) > 0 > result.mean_net(honest=False)
    losers = [a for a, v in result.net.items() if result.kind[a] != "honest" and v < 0]
    assert len(losers) >= 0.9 * sum(1 for kind in result.kind.values() if kind != "honest")


@pytest.mark.parametrize("kind", [LIAR, SILENT, COPIER])
def test_every_way_of_blocking_is_punished(kind):
    result = simulate(1 / 3, 200, pool=POOL, dishonest_kinds=(kind,), seed=5)
    assert result.mean_net(honest=False) < 0 < result.mean_net(honest=True)


def test_the_simulation_sees_the_attack_it_measures():
    """A check on the check: a pool with no honest workers always finalizes the lie."""
    result = simulate(1.0, 20, pool=10, seed=1)
    assert result.wrong == 20


@pytest.mark.slow
@pytest.mark.parametrize("share", [Fraction(1, 5), Fraction(1, 3)], ids=["0.2", "1/3"])
@pytest.mark.parametrize("k", [3, 5])
def test_long_simulation_matches_the_table(share, k):
    jobs = 2000
    result = simulate(float(share), jobs, pool=POOL, k=k, seed=11)
    expected = _table(share, k)
    assert binomial_p_value(result.wrong, jobs, expected.wrong) > ALPHA
    assert binomial_p_value(result.unresolved, jobs, expected.unresolved) > ALPHA
