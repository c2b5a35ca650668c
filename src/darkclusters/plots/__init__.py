"""Figures: quick-look PNGs of per-cluster files, and (later) the paper's figures."""
