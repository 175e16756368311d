"""pytest fixtures that start the fake services (``pytest_plugins = ["pretix_integrations_core.testing.fixtures"]``)."""
import pytest

from .apras import FakeApras
from .billetweb import FakeBilletweb
from .calendly import FakeCalendly
from .docuseal import FakeDocuSeal
from .helloasso import FakeHelloAsso
from .invoiceninja import FakeInvoiceNinja
from .mautic import FakeMautic
from .weezevent import FakeWeezevent


@pytest.fixture
def fake_apras():
    with FakeApras() as server:
        yield server


@pytest.fixture
def fake_helloasso():
    with FakeHelloAsso() as server:
        yield server


@pytest.fixture
def fake_calendly():
    with FakeCalendly() as server:
        yield server


@pytest.fixture
def fake_docuseal():
    with FakeDocuSeal() as server:
        yield server


@pytest.fixture
def fake_invoiceninja():
    with FakeInvoiceNinja() as server:
        yield server


@pytest.fixture
def fake_mautic():
    with FakeMautic() as server:
        yield server


@pytest.fixture
def fake_billetweb():
    with FakeBilletweb() as server:
        yield server


@pytest.fixture
def fake_weezevent():
    with FakeWeezevent() as server:
        yield server
