"""IR -> Relax: the emission table and its driver (`relax`), one module of rules per op
family (`basic`, `shape`, `nn`, `pool`, `int`, `int_linalg`), the packed CPU kernels
(`tiled`, `vnni`) and their TE definitions (`kernels`).

Importing this package registers every rule (the modules below fill `relax.EMIT` and
`relax.TILED`); `relax` itself imports no rule module, so the package has no import cycle.
Everything here emits; nothing schedules: the CPU schedules (`codegen.cpu`) and the GPU
pipeline (`codegen.gpu`) read the block names `kernels` defines.
"""
from vcompile.codegen.emit import (  # noqa: F401  (register rules)
    basic,
    index,
    int,
    int_linalg,
    math,
    nn,
    pool,
    recurrent,
    shape,
    tiled,
)
