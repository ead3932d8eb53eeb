"""Shared fixtures: real database URLs from the environment.

WATCHDOG_TEST_POSTGRES_URL and WATCHDOG_TEST_MYSQL_URL point at servers the tests may
use freely (each test works in its own uniquely named tables or database objects).
Without them the tests skip with a message; under CI=true a missing server fails.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() == "true"


def _server_url(var: str, what: str) -> str:
    url = os.environ.get(var)
    if not url:
        msg = f"{what} tests need {var} (e.g. see .ci/run)"
        if IN_CI:
            pytest.fail(f"{msg}; under CI=true a missing server is a failure")
        pytest.skip(msg)
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # a laptop without the server
        if IN_CI:
            pytest.fail(f"{what} at {var} is unreachable under CI=true: {exc}")
        pytest.skip(f"{what} at {var} is unreachable: {exc}")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _server_url("WATCHDOG_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def mysql_url() -> str:
    return _server_url("WATCHDOG_TEST_MYSQL_URL", "MariaDB/MySQL")


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def db_url(request, tmp_path) -> str:
    """An order/state database URL for each supported dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def unique_name() -> str:
    """A table-name-safe unique suffix, so tests can share one server database."""
    return "t" + uuid.uuid4().hex[:12]
