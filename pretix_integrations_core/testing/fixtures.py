"""pytest fixtures that start the fake services (``pytest_plugins = ["pretix_integrations_core.testing.fixtures"]``)."""
import pytest

from .apras import FakeApras


@pytest.fixture
def fake_apras():
    with FakeApras() as server:
        yield server
