"""Frontends: each reads one model format into the graph IR (neoncc.ir)."""
