"""Code generation: IR -> Relax (`relax`, `emit_*`), named targets (`targets`), and
building/exporting a library (`build`). Every `tvm` import of vcompile lives here and in
`vcompile.runtime`.
"""
