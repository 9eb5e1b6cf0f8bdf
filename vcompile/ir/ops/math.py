"""IR ops (issue 20): see the docstring once filled in."""
from __future__ import annotations
