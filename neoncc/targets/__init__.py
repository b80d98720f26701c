"""Targets as data: toolchain files (toolchains/*.yaml) and the Debian-built sysroots they name."""
