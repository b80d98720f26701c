"""Measurement tools for the engines the toolchain builds (instruction counts under qemu-user, ...)."""
