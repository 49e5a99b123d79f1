from __future__ import annotations

import pytest

from tests.unit.notifications.samples import ROUTES
from txnmon.notifications import routes as routing


@pytest.fixture
def routes() -> routing.Routes:
    return routing.parse_routes(ROUTES)
