"""ONNX converters (issue 20): see the module's own docstring once filled in."""
from __future__ import annotations
