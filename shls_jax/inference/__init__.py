"""Video inference: the propagation engine (`propagation.Propagator`)."""
