"""The -O levels, written out: phase order matters, so nothing computes it.

None of them changes numerics beyond float reassociation; numerics-changing passes
(integer lowering, fp16) are asked for by name.
"""
from __future__ import annotations

from collections.abc import Sequence

from vcompile.errors import VcompileError
from vcompile.passes.infra.spec import PassSpec, make_spec, parse_pipeline

# Canonical form is what codegen accepts, so even -O0 canonicalizes.
O0: tuple[str, ...] = ("canonicalize", "dce")
# BN folding first: it turns conv+BN pairs into plain convs and standalone BNs into
# scale-shifts, the shapes reparameterize and fold-scale look for. fold-transposes after
# it: tf2onnx's NHWC <-> NCHW transposes around each conv cancel once sunk through the
# (folded) elementwise ops between convs, which then see conv -> add -> conv.
O1: tuple[str, ...] = O0 + ("fold-constants", "fold-batchnorm", "fold-transposes", "dce")
# Recognition comes before fold-scale, which would otherwise fold GELU's 0.5 into the
# next linear and leave a product no pattern names. Branch merging exposes BNs after
# the merged conv (RepViT) and layer scales next to it (FastViT), hence fold-batchnorm
# and fold-scale again after it.
# simplify-layout respells reshape+transpose pairs, so it runs once recognize has
# matched the exporters' spelling of attention (it canonicalizes too).
# depthwise-nhwc runs once recognize has its attention patterns (it respells layouts) and
# before fusion, which puts the GELU after the channels-last conv into its group.
# Fusion comes last: it groups what the rewrites leave into kernels.
_O2_REWRITES: tuple[str, ...] = O1 + ("recognize", "depthwise-nhwc", "simplify-layout",
                                      "slices-before-transpose", "reparameterize",
                                      "fold-batchnorm", "fold-scale", "canonicalize", "dce")
O2: tuple[str, ...] = _O2_REWRITES + ("fuse",)
# A second round picks up merges that the first round's folding exposed.
O3: tuple[str, ...] = _O2_REWRITES + ("reparameterize", "fold-scale", "canonicalize", "dce", "fuse")

LEVELS: dict[int, tuple[str, ...]] = {0: O0, 1: O1, 2: O2, 3: O3}

# Rewrites for token-layout (bnc) blocks that attention-to-conv's layouts leave out.
BNC_ONLY: tuple[str, ...] = ("depthwise-nhwc", "slices-before-transpose")

# attention-to-conv runs after the rewrites (it moves the linear, layer_norm and attention
# ops `recognize` makes) and before fusion (which groups the conv epilogues it exposes).
ATTN_TO_CONV: tuple[str, ...] = ("attention-to-conv", "canonicalize", "dce")

# The int8 flow: the rewrites run on the float graph, calibration and QDQ insertion follow,
# then the integer lowering and (when the list fuses) fusion. depthwise-nhwc makes a
# float-only op (lower-integer lowers NCHW convs) and fusion must see the integer graph, so
# both stay out of the rewrites.
NOT_BEFORE_QUANT: tuple[str, ...] = ("fuse", "depthwise-nhwc")
LOWER_INTEGER: tuple[str, ...] = ("lower-integer", "canonicalize", "dce")


def with_attn_layout(specs: Sequence[PassSpec], layout: str | None) -> list[PassSpec]:
    """`specs` with attention-to-conv put in (bchw, ane: with that layout) or taken out
    (bnc); None: as is."""
    from vcompile.passes.attention_to_conv import check_layout
    out = list(specs)
    if layout is None:
        return out
    if check_layout(layout) == "bnc":
        return [s for s in out if s.name != "attention-to-conv"]
    # channel-first blocks want NCHW convs: a channels-last depthwise conv between them
    # would need transposes that attention-to-conv otherwise removes; and its layout
    # propagation follows a q, k, v split as one transpose, not three
    out = [s.with_options(layout=layout) if s.name == "attention-to-conv" else s
           for s in out if s.name not in BNC_ONLY]
    if any(s.name == "attention-to-conv" for s in out):
        return out
    at = next((i for i, s in enumerate(out) if s.name == "fuse"), len(out))
    added = [make_spec(n, {"layout": layout} if n == "attention-to-conv" else None) for n in ATTN_TO_CONV]
    return out[:at] + added + out[at:]


def int8_split(specs: Sequence[PassSpec]) -> tuple[list[PassSpec], list[PassSpec]]:
    """(the rewrites before calibration, the passes after QDQ insertion) for a pipeline."""
    before = [s for s in specs if s.name not in NOT_BEFORE_QUANT]
    after = list(parse_pipeline(LOWER_INTEGER)) + [s for s in specs if s.name == "fuse"][:1]
    return before, after


def pipeline(level: int | str) -> tuple[str, ...]:
    """The pass list of `-O<level>` (0..3, or "O2"/"-O2")."""
    key = str(level).lstrip("-").lstrip("O")
    if not key.isdigit() or int(key) not in LEVELS:
        raise VcompileError(f"unknown optimization level {level!r}; use -O0, -O1, -O2 or -O3")
    return LEVELS[int(key)]
