"""Integer-only lowering (`lower-integer`, registered in `lower_integer`): QDQ pairs move
through layout ops (`qdq_sink`), then each quantized op becomes its integer form
(`contractions`, `nonlinear`, `elementwise`, `lut`), with scales from `qparams`."""
