"""Command-line tools: `python -m shls_jax.tools.<name>`."""
