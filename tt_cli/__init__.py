"""The `tt` command-line toolkit: data, training, evaluation, export and benchmarks.

Its layers and the one module that owns each decision: ARCHITECTURE.md at the top level.
"""
