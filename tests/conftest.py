"""Shared pytest options and hypothesis profiles."""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI replays a fixed example sequence, so a landing never hinges on a lucky draw; local
# runs explore new examples each time (failures found there become regression tests).
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the '# ---- expected' sections of tests/golden/**/*.vir; review the diff")
