"""SYNTHETIC galaxy-cluster data: a halo-model particle generator and toy stellar populations."""
