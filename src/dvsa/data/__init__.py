"""Datasets: Karpathy-split JSON, the shapes world, tokens and vocabulary, labels HDF5, batching."""
