"""Data: DAVIS, still images with saliency masks, synthetic demo data, training
pseudo-sequences and the tf.data input pipeline."""
