"""Fixtures shared by the Mailgun provider tests."""

from __future__ import annotations

import pytest

from tests.providers.mailgun.fixtures import make_config
from tidings.providers.mailgun.settings import MailgunConfig


@pytest.fixture
def config() -> MailgunConfig:
    return make_config()
