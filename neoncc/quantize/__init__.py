"""Post-training 8-bit quantization: calibrated activation ranges (QASYMM8) and per-channel weights, planned so
that the engine quantizes once at its input and de-quantizes once at its output."""
