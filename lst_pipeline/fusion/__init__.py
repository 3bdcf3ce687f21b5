"""Fusion: reference selection, block kernels, methods and the Dask engine."""
