"""CPU (LLVM) kernels after emission: the rule-based schedules (`schedules`) and the
MetaSchedule database of tuned records (`database`) that `codegen.tune` fills and the CPU
backend applies."""
