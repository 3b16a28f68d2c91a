"""Fixtures of the command-line tests that run aioq processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aioq import Aarq

from ..apps.proc_app import build
from ..procs import delete_prefix


@pytest.fixture
async def client(nats_url: str, prefix: str) -> AsyncIterator[Aarq]:
    """The producer side: the process-test app's tasks on the test prefix, to enqueue with."""
    application = build(prefix, servers=nats_url)
    yield application
    await application.close()
    await delete_prefix(nats_url, application.names)
