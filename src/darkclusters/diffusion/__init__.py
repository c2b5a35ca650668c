"""Diffusion priors of cluster mass conditioned on photometry: EDM preconditioning, networks, data, training.

Module map (submodules are imported on demand, so ``import darkclusters.diffusion`` stays light):

- :mod:`.normalise` — per-channel ln(x + offset), then (· − shift)/scale, fitted on the training split;
  exact inverse.
- :mod:`.data` — the HDF5 shards ``results/datasets/{name}/{split}.h5`` and :class:`~.data.ShardDataset`.
- :mod:`.networks` — backbones: DDPM++ (``ddpmpp``) and ADM (``adm``) UNets, built by name from a registry.
- :mod:`.edm` — :class:`~.edm.EDMPrecond` (Karras et al. 2022, Table 1; conditioning by channel concatenation)
  and :class:`~.edm.EDMLoss`.
- :mod:`.train` — the training loop (EMA, warm-up, bf16, accumulation, DDP, exact resume), ``train_prior`` and
  ``load_denoiser``; :mod:`.trainer` holds one run's state and optimizer step, :mod:`.train_state` the config
  defaults, data order, metrics log, distributed set-up, RNG states and checkpoint files.
- :mod:`.regression` — the UNet regression baseline (photometry → Σ), ``train_unet_baseline``.
- :mod:`.samplers` — σ schedules and samplers (Heun, DPS, DAPS) as plain functions of a denoiser.
"""
