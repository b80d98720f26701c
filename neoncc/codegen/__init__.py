"""Backends: the optimised graph IR -> source code."""
