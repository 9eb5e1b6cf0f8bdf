"""Graph passes: a registry of `Graph -> Graph` functions by kebab-case name, a pass
manager, pattern rewriting and the -O pipelines.

    from vcompile import passes
    g = passes.run(g, "fold-batchnorm,canonicalize")      # or passes.run(g, passes.O2)
    line = passes.bisect_numerics(g, passes.O2).line     # which pass broke the numbers
"""
from vcompile.passes import (  # noqa: F401  (register the passes)
    attention_to_conv,
    canonicalize,
    cse,
    dce,
    depthwise_nhwc,
    fold_batchnorm,
    fold_constants,
    fold_scale,
    fuse,
    layout,
    lower_integer,
    recognize,
    reparameterize,
)
from vcompile.passes.bisect import BisectResult, bisect_numerics
from vcompile.passes.manager import PassError, PassManager, PassStat, format_stats, run
from vcompile.passes.pattern import Match, P, RewriteBuilder, RewriteError, rewrite, rule
from vcompile.passes.pipeline import O0, O1, O2, O3, pipeline
from vcompile.passes.registry import PASSES, UnknownPassError, get_pass, register

__all__ = ["BisectResult", "Match", "O0", "O1", "O2", "O3", "P", "PASSES", "PassError",
           "PassManager", "PassStat", "RewriteBuilder", "RewriteError", "UnknownPassError",
           "bisect_numerics", "format_stats", "get_pass", "pipeline", "register", "rewrite",
           "rule", "run"]
