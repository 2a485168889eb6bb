"""Per-object ROI crops for the decoder: PyTorch-convention resampling and RoIAlign, the
reference's exact crops, and static-size crops for jit."""
