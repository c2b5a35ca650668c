"""Simulation inputs: readers, writers and synthetic generators for cluster snapshots."""
