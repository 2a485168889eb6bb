"""Parity with the PyTorch reference: recompute every stage of a parity directory and compare
(`python -m shls_jax.parity`)."""
