"""Graph passes: one module per registered `Graph -> Graph` pass (kebab-case name), the
integer lowering in `integer/`, and the infrastructure in `infra/` (registry, pass
manager, pipeline text, -O tables, pattern rewriting, numeric bisection).

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
    fold_transposes,
    fuse,
    layout,
    recognize,
    reparameterize,
)
from vcompile.passes.infra.bisect import BisectResult, bisect_numerics
from vcompile.passes.infra.manager import PassError, PassManager, PassStat, format_stats, run
from vcompile.passes.infra.pattern import Match, P, RewriteBuilder, RewriteError, rewrite, rule
from vcompile.passes.infra.pipeline import O0, O1, O2, O3, pipeline
from vcompile.passes.infra.registry import PASSES, UnknownPassError, get_pass, register
from vcompile.passes.integer import lower_integer  # noqa: F401  (registers lower-integer)

__all__ = ["BisectResult", "Match", "O0", "O1", "O2", "O3", "P", "PASSES", "PassError",
           "PassManager", "PassStat", "RewriteBuilder", "RewriteError", "UnknownPassError",
           "bisect_numerics", "format_stats", "get_pass", "pipeline", "register", "rewrite",
           "rule", "run"]
