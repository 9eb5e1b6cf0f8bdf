"""ONNX ops that the converter table lacks but ONNX defines by a function body.

    expand(model, has_converter) -> model with such nodes replaced by their bodies

(Filled in by the real-world-models work, issue 20.)
"""
from __future__ import annotations

from collections.abc import Callable

import onnx


def expand(model: onnx.ModelProto, has_converter: Callable[[onnx.NodeProto], bool]
           ) -> onnx.ModelProto:
    return model
