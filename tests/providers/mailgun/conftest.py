"""Fixtures shared by the Mailgun provider tests."""

from __future__ import annotations

import pytest

from tests.providers.mailgun.fixtures import make_config
from tidings.providers.base import ProviderConfig


@pytest.fixture
def config() -> ProviderConfig:
    return make_config()
