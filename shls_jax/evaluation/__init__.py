"""DAVIS evaluation: J and F metrics, scoring of result folders, result mask files."""
