"""The `tt` command-line toolkit: data, training, evaluation, export and benchmarks."""
