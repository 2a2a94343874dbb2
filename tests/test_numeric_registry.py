"""Every registered result has a numeric check, and every check confirms a registered result."""

from derive.registry import all_results
from numeric.checks import MonteCarloCheck, all_checks


def test_every_result_has_a_check():
    missing = [r.id for r in all_results() if r.id not in all_checks()]
    assert not missing, f"results without a numeric check: {missing}"


def test_every_check_confirms_a_registered_result():
    registered = {r.id for r in all_results()}
    assert set(all_checks()) <= registered


def test_every_result_has_a_negative_control_somewhere():
    """Each result's checks include at least one wrong formula (Monte Carlo) or wrong variant."""
    for result_id, checks in all_checks().items():
        mc = [c for c in checks if isinstance(c, MonteCarloCheck)]
        if mc:
            assert any(c.wrong for c in mc), f"{result_id}: no Monte Carlo check has a negative control"


def test_ci_sample_sizes_are_smaller_than_defaults():
    for checks in all_checks().values():
        for c in checks:
            if isinstance(c, MonteCarloCheck):
                assert 2 <= c.ci_samples <= c.samples and c.batch >= 1
