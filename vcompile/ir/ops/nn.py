"""Neural-network ops: convolution, pooling, normalization, resize. (being written)"""
