"""Shared pytest options."""
from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the '# ---- expected' sections of tests/golden/**/*.vir; review the diff")
