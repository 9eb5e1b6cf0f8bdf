"""Seeing what the compiler did: kernel tables, per-kernel profiles, graph drawings and
the HTML report.

    kernels   op classes and the kernel table of a compiled graph (one row per kernel)
    profile   per-kernel times from an instrumented Relax VM, matched to the table
    draw      the IR drawn with Graphviz (fusion groups as clusters)
    html      one self-contained HTML page (jinja2 template in templates/)

Everything here is plain Python over the IR; the TVM side of profiling lives in
`vcompile.runtime.profile`.
"""
