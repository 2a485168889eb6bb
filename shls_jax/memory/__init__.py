"""The superfeature memory: superpixel pools, the rules of a frame (`frame_rules`), the host
memory (numpy + faiss: kNN vote, per-class k-means), the on-device memory of inference with the
same interface (`jax_memory`), and the on-device twin of the training step
(`training_memory`)."""
