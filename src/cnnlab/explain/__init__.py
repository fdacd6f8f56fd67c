"""Seeing what a CNN looks at: CAMs, feature maps, filters and embeddings of a run."""
