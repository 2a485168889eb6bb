"""The superfeature memory: superpixel pools, the rules of a frame (`frame_rules`), the host
memory (numpy + faiss: kNN vote, per-class k-means), the on-device memory of inference with the
same interface (`device_inference`), and the on-device twin of the training step
(`device_memory`)."""
