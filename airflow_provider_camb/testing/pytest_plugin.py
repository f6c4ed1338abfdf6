"""Pytest fixtures for the CAMB stand-in: ``pytest_plugins = ["airflow_provider_camb.testing.pytest_plugin"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_camb.testing.server import CambStandIn


@pytest.fixture
def camb_standin() -> Iterator[CambStandIn]:
    """A running stand-in with a fresh key whose tasks stay PENDING for 0.5 s; stopped after the test."""
    with CambStandIn(pending_seconds=0.5) as standin:
        yield standin


@pytest.fixture
def camb_standin_factory() -> Iterator[Callable[..., CambStandIn]]:
    """``camb_standin_factory(**CambStandIn_kwargs)`` starts a stand-in; all are stopped after the test."""
    started: list[CambStandIn] = []

    def make(**kwargs: Any) -> CambStandIn:
        standin = CambStandIn(**kwargs).start()
        started.append(standin)
        return standin

    yield make
    for standin in reversed(started):
        standin.stop()
