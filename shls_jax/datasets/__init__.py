"""Video object segmentation datasets."""
