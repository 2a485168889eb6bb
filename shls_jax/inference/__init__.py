"""Video inference: the propagation engine (`engine.Propagator`)."""
