"""Code generation: a verified graph -> Relax -> a TVM library for a named target.

    emit/       IR -> Relax (`emit.relax.to_relax`; one rule module per op family), the
                TE kernels the CPU schedules expect (`kernels`, `tiled`, `vnni`)
    pipelines   the TVM Relax pass lists: fusion, constant lifting, the CPU pipeline
    cpu/        rule-based schedules (`schedules/`) and the tuning database
    gpu         TVM's GPU pipeline with dlight's schedules; the CUDA sidecar and stub driver
    backends/   one `Backend` per TVM target kind (llvm, cuda, opencl): what `build` runs
    targets     the named targets (TVM target dicts, toolchains, option checks)
    options     what codegen is told (the plan's codegen half)
    build       build() and export(): an entry point, as are `tune` (MetaSchedule search
    tune        over a model's kernels) and `deploy.bundle`
    deploy/     the artifact trailer, TVM's runtime libraries, the bundle and its templates

Imports point down these layers: build, tune, deploy.bundle; targets; backends; cpu,
gpu; pipelines; emit; deploy.artifact, deploy.runtime_libs, options (pyproject.toml's
`[tool.importlinter]` checks them, and that no package inside codegen has a cycle).
Every `tvm` import of vcompile lives here and in `vcompile.runtime`.
"""
