"""The -O levels, written out: phase order matters, so nothing computes it.

None of them changes numerics beyond float reassociation; numerics-changing passes
(integer lowering, fp16) are asked for by name.
"""
from __future__ import annotations

from vcompile.errors import VcompileError

# Canonical form is what codegen accepts, so even -O0 canonicalizes.
O0: tuple[str, ...] = ("canonicalize", "dce")
# BN folding first: it turns conv+BN pairs into plain convs and standalone BNs into
# scale-shifts, the shapes reparameterize and fold-scale look for.
O1: tuple[str, ...] = O0 + ("fold-constants", "fold-batchnorm", "dce")
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


def with_attn_layout(names: tuple[str, ...] | list[str], layout: str | None) -> list[str]:
    """`names` with attention-to-conv put in (bchw, ane) or taken out (bnc); None: as is."""
    from vcompile.passes.attention_to_conv import check_layout
    out = list(names)
    if layout is None:
        return out
    if check_layout(layout) == "bnc":
        return [n for n in out if n != "attention-to-conv"]
    # channel-first blocks want NCHW convs: a channels-last depthwise conv between them
    # would need transposes that attention-to-conv otherwise removes; and its layout
    # propagation follows a q, k, v split as one transpose, not three
    out = [n for n in out if n not in BNC_ONLY]
    if "attention-to-conv" in out:
        return out
    at = out.index("fuse") if "fuse" in out else len(out)
    return out[:at] + list(ATTN_TO_CONV) + out[at:]


def pipeline(level: int | str) -> tuple[str, ...]:
    """The pass list of `-O<level>` (0..3, or "O2"/"-O2")."""
    key = str(level).lstrip("-").lstrip("O")
    if not key.isdigit() or int(key) not in LEVELS:
        raise VcompileError(f"unknown optimization level {level!r}; use -O0, -O1, -O2 or -O3")
    return LEVELS[int(key)]


# -O3 turns attention-to-conv on only for the (target, model) pairs where
# benchmarks/attention_to_conv.py measured it faster, by at least 1.05x in most runs
# (README, "attention-to-conv"). Measured 2026-11-23 on the host CPU (x86-64, 2 threads),
# pass-off / pass-on (bchw) latency, run by run: deit 0.88x 0.88x; swin 0.77x 0.76x 0.85x
# 0.75x; levit 0.93x 0.95x 0.93x 1.06x 0.96x (the last on a quiet machine); efficientvit_m0
# 1.00x 0.99x 1.00x; nextvit_small 1.00x 1.04x 1.00x; lowformer_b0 1.06x 1.00x 1.05x
# 1.00x; convnext_atto 1.02x 1.00x; mobilevitv2_050 (graph unchanged by the pass) 1.00x
# 0.80x: noise. ane is slower or level everywhere. Nothing is faster on the CPU, so every
# entry is off (None). Other targets (x86_64, arm64, cuda: no GPU on the build machine)
# were not measured: no entry, so the pass stays off there too.
O3_ATTN_LAYOUT: dict[tuple[str, str], str | None] = {
    ("host", model): None
    for model in ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128s",
                  "efficientvit_m0", "mobilevitv2_050", "nextvit_small", "lowformer_b0", "convnext_atto")
}


def o3_attn_layout(target: str, model: str) -> str | None:
    """The layout -O3 uses for `model` on `target` (None: the pass stays off)."""
    return O3_ATTN_LAYOUT.get((target, model))
