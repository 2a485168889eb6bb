"""Training: losses, the static-shape pmap step, the reference's exact step, and the loop."""
