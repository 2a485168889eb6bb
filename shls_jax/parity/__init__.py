"""Parity with the PyTorch reference: recompute every stage of a parity directory and compare
(`shls-parity`)."""
