"""The SHLS network: backbone, superfeature embedding, feature modulator and refinement decoder."""
