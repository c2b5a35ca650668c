"""Projection of cluster particles onto sky maps: viewing directions, map geometry, deposition, truth maps."""
