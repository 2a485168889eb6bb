"""The superfeature memory: the rules of a frame (`frame_rules`, `rois`, `rules`), the inference
memory's contract (`interface.InferenceMemory`) and its two implementations (`faiss_memory`: numpy
+ faiss kNN vote and per-class k-means; `jax_memory`: the same in JAX), and the traced memory of
the training step (`training_memory`)."""
