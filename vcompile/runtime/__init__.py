"""The runtime: load a vcompile library and run it (numpy in, numpy out).

`artifact` reads and writes the library's metadata trailer without TVM; `module`
holds `CompiledModel` and `load`, which import TVM only when a model is loaded.
"""
