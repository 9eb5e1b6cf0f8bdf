"""The pass infrastructure: the registry, the pass manager, pipeline text and the -O
tables, pattern rewriting, numeric bisection, and the helpers several passes share
(index maps, layout twins, weight folding). Registered passes live one level up."""
