"""Quantization options shared by `vcompile compile`, `inspect` and `bench`.

    --int8                      post-training int8 quantization, integer-only lowering
    --calib FILE|DIR            calibration inputs: an .npz keyed by input name, or a
                                directory of .npy files (default: synthetic, with a warning)
    --calib-method minmax|percentile
    --percentile P              percentile of |x| for --calib-method percentile (99.99)
"""
from __future__ import annotations

import argparse

from vcompile.errors import VcompileError


def add_quant_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quantization")
    g.add_argument("--int8", action="store_true",
                   help="quantize to int8 (calibrated PTQ) and lower to integer-only ops")
    g.add_argument("--calib", metavar="FILE|DIR",
                   help="calibration inputs for --int8: an .npz whose keys are the input names, "
                        "or a directory of .npy files; the first 8 sample batches are used "
                        "(default: random inputs, with a warning)")
    # NOTE: no argparse `choices`: a bad value gets our one-line error, as --attn-layout's does
    g.add_argument("--calib-method", default="minmax", metavar="minmax|percentile",
                   help="activation ranges: min/max, or a percentile of |x| (default minmax)")
    g.add_argument("--percentile", type=float, default=99.99, metavar="P",
                   help="the percentile for --calib-method percentile (default 99.99)")


def check_args(args: argparse.Namespace) -> None:
    """Bad quantization options fail in one line before the model loads."""
    from vcompile.quant.calibrate import check_method
    check_method(args.calib_method, args.percentile)
    if not args.int8 and (args.calib is not None or args.calib_method != "minmax"):
        raise VcompileError("--calib and --calib-method apply to --int8; add --int8")
