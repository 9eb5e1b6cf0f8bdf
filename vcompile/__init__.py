"""vcompile: a neural-network graph compiler (ONNX/PyTorch -> IR -> passes -> TVM)."""
__version__ = "0.1.0"
