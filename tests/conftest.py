pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.airflow", "tests.fixtures.browser"]
