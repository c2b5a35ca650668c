"""Light profiles shared by the mocks and the likelihoods (one implementation of each).

* ``sersic`` — the elliptical Sérsic profile: b_n, the elliptical radius, surface brightness, total flux and
  amplitude ↔ flux; numpy in gives numpy out, torch tensors keep their gradients. Used by the photometry
  (ICL, background galaxies) and the strong-lensing sources (``darkclusters.lensing.sersic``).
"""
