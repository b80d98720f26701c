"""Trained tensors: NumPy .npz in, the engine's own checked weight file out."""
