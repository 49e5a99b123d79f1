import random

import pytest

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.airflow", "tests.fixtures.browser"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Property-based tests run with a fresh seed each time, printed in the header, so any failure
    # can be replayed exactly with `--hypothesis-seed=N`.
    if config.getoption("hypothesis_seed", default=None) is None:
        config.option.hypothesis_seed = random.randrange(2**32)


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis seed: {seed} (replay a failure with --hypothesis-seed={seed})"
