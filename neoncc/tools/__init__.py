"""Host-side commands around the engine (python3 -m neoncc ...)."""
