"""Frames, masks and results folders on disk (no JAX): what every command reads and writes."""
