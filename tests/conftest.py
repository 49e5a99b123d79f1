import random

import pytest
from hypothesis import settings as hypothesis_settings

pytest_plugins = [
    "tests.fixtures.stack", "tests.fixtures.airflow", "tests.fixtures.browser", "tests.fixtures.receivers",
]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Property-based tests run with a fresh seed each time, printed in the header, so any failure
    # can be replayed exactly with `--hypothesis-seed=N`.
    if config.getoption("hypothesis_seed", default=None) is None:
        config.option.hypothesis_seed = random.randrange(2**32)


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis seed: {seed} (replay a failure with --hypothesis-seed={seed})"


# No deadline: a property test must fail on a wrong answer, never on a slow example (a loaded
# two-core CI machine is slow at random); speed is measured by `make bench`.
hypothesis_settings.register_profile("txnmon", deadline=None)
hypothesis_settings.load_profile("txnmon")
