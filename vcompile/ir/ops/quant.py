"""Quantization ops: quantize_linear, dequantize_linear. (being written)"""
