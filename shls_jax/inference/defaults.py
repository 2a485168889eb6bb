"""Default settings of the propagation engine (`config.inference`): plain data, importable
without JAX, faiss or TensorFlow so that config files load instantly."""

import ml_collections

# Normalisation of DAVIS frames (the reference's statistics).
DAVIS_MEAN = (0.4512, 0.4448, 0.4111)
DAVIS_STD = (0.2485, 0.2403, 0.2617)


def get_config() -> ml_collections.ConfigDict:
  """The engine's settings (`config.inference` of `configs/default.py`)."""
  config = ml_collections.ConfigDict()
  config.mode = 'exact'  # "exact" (reference parity) or "fast" (static shapes)
  # The superfeature memory: 'faiss' (host, the reference's) or 'device' (kNN and k-means in JAX
  # on the accelerator, no faiss; `shls_jax.memory.jax_memory`, deviations measured in
  # the README's "Memory backends").
  config.memory = 'faiss'
  # 'device' memory: Lloyd iterations of each k-means fit (faiss runs 300 with 10 restarts).
  config.device_kmeans_iterations = 20
  # Fast mode with the 'device' memory: each frame t >= 1 is one jitted step on the device
  # (`inference.frame_step`: superpixels, memory, the frame rules in JAX, decoder; one copy of
  # the frame in and of the mask out). False keeps the frame rules on the host (numpy), as
  # exact mode and the 'faiss' memory always do. Deviations measured in the README ("The frame
  # on the accelerator").
  config.frame_step = True
  config.mean = DAVIS_MEAN
  config.std = DAVIS_STD
  # Superpixel counts are padded up to a multiple of this, so the embedding compiles once per
  # bucket rather than once per frame (values for labels 1..N are unchanged).
  config.superpixel_bucket = 256
  # Fast mode: at least this capacity, i.e. one embedding compilation for up to this many
  # superpixels (ISEC gives about 1000-1300 per 480p frame).
  config.superpixel_capacity = 1536
  # Fast mode: canvas side buckets (multiples of 4). Each side of a frame's canvas is the
  # smallest bucket holding every object's ROI padded to a multiple of 4, capped at the frame's
  # padded side; the decoder compiles once per canvas (and object capacity) used. Coarser steps
  # mean fewer compilations but more zero canvas around the ROIs, which costs decoder time
  # (proportional to the canvas area) and agreement with exact mode (the decoder's convolutions
  # see that canvas instead of their own zero padding; mean per-frame mask IoU against exact
  # mode 0.990 on DAVIS blackswan, see the module docstring). These steps (32 px up to 256,
  # 64 up to 512, 128 beyond) add at most a quarter to a side above 128.
  config.canvas_sizes = (
    32,
    64,
    96,
    128,
    160,
    192,
    224,
    256,
    320,
    384,
    448,
    512,
    640,
    768,
    896,
    1024,
  )
  # Fast mode: quality/speed knob for large ROIs. An ROI whose longest side exceeds this (a
  # multiple of 4; 0 = no limit) is decoded at a size scaled by one factor to this longest side
  # (`static_crops.decode_extents`), its output resized back onto the ROI. The decoder's time
  # grows with the canvas area, but the decoder is scale-sensitive. Measured at 480x854 (DAVIS
  # blackswan, 4 frames, ~1000 SLIC superpixels, v1 checkpoint, ROIs up to 312x464; mean
  # per-frame mask IoU against exact mode / decoder s per frame on a loaded 2-core CPU):
  # 0: 0.997 / 9.3; 448: 0.977 / 8.6; 384: 0.965 / 8.9 (all canvases 320x384);
  # 320: 0.79 / 6.5; 256: 0.76 / 4.0; 192: 0.72 / 2.2. 384 is the smallest value tried that
  # keeps IoU >= 0.95; it only saves the canvases wider than 384.
  config.max_canvas = 384
  # Return the aggregated log-odds of every frame in `VideoResult.logodds` (memory heavy).
  config.keep_logodds = False
  return config
