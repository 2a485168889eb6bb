"""The superfeature memory: superpixel pools, the host memory (numpy + faiss: kNN vote,
per-class k-means, ROIs, attention maps) and its on-device twin for the training step."""
