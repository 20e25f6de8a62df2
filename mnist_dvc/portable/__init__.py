"""`numerics: portable`: training and scoring arithmetic in one order fixed by this code, the
same bits on every x86-64 CPU with AVX2 and FMA and at any thread count (docs/reproducibility.md).

kernels.cc holds the contractions and build.py compiles it; ops.py holds the operations of a
training step and their gradients; network.py runs a Keras model's layers with them.
"""
