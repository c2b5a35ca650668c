"""Compiled exact 2-D k-nearest-neighbour box-kernel sums at query points (the engine of :mod:`.knn`).

Index. The particles' sky positions are binned into a square of 2^L × 2^L cells (the index's box) by a
counting sort on the cells' Morton (Z-order) keys, so that every cell of every coarser level ℓ ≤ L (side
s_ℓ = side / 2^ℓ) is one contiguous run of the sorted particles, found from one offsets table. Particles
outside the box are clamped into its border cells, which are treated as reaching to infinity (their
rectangles are open outwards): the box only decides where the cells are fine, never which particles count.
A subset of the particles (one species) keeps the cell order: it is a sequential filter, not a new sort.

Query (one point p: the k-th neighbour distance r_k and the Q weight sums over the k nearest). Given bounds
L < r_k ≤ B, the level with cell side ≈ B / 4 is scanned over the cells that come within B of p. Particles
with d < L are certainly among the k nearest (fewer than k particles lie strictly inside r_k ≥ L), so their
weights are summed on the spot; those with L ≤ d ≤ B go to a buffer, where the (k − n_inner)-th smallest d²
is found by a histogram of d² (uniform areal density makes it uniform in d²) and a quickselect inside the
one bin that holds it. Every step is checked: fewer than k particles within B means r_k > B (B becomes the
new L and a wider B is tried, up to everything); k or more inside L means r_k < L (L becomes the new B). So
the result is exact whatever the bounds; they only decide the speed.

Bounds. r_k is 1-Lipschitz in p (triangle inequality): |r_k(p) − r_k(p')| ≤ |p − p'|. Queries come in runs
(e.g. the pixels of one map row). Each query's valid bounds are r_k(prev) ± |Δ| from the previous query of
its run, combined with bounds given per query (the caller's, e.g. from coarser pixels). It first tries a
narrower window, ± 0.07 |Δ| around r_k(prev) or around the caller's guess made at a smaller distance |Δ|
(on the 1e7-particle benchmark cluster ≈ 85–90 % of the queries hit it; ± 0.2 hits ≈ 99 % but buffers far
more candidates per query and was ≈ 15 % slower in all), and a miss tries a window 4× as wide beyond the
missed one (clipped to the valid bounds), then the valid bounds as above. Without any bound, the first
query of a run counts the particles in the 3 × 3 blocks of cells around p from the finest level up; the
first block holding ≥ k gives B = the distance to its farthest corner. Runs are independent (each has its
own scratch buffers) and run in parallel (numba prange, groups of consecutive runs per task for cache
reuse), so the results do not depend on the thread count or on the scheduling.

Exactness. r_k² is the k-th smallest of the float64 values d² = (x − p_x)² + (y − p_y)² over all particles
(what a brute-force sort gives); the weight sum is over d² < r_k², plus the tie: when n_eq particles sit at
exactly r_k and only j of them are among the k nearest, each adds the fraction j / n_eq of its weight (the
tie's mean weight × j). That is symmetric in the particles (independent of their order) and equals any k
nearest choice (cKDTree's too) whenever the tied particles' weights are equal; with continuous coordinates
ties have measure zero. Sums run in cell order, so reordering the input changes them by rounding only.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from darkclusters.projection.neighbours import quickselect

Alloc = Callable[[str, tuple[int, ...], type], np.ndarray]  # (name, shape, dtype) → uninitialised array

__all__ = ["build_index", "interpolate_level", "query_runs", "subset_index", "take_rows"]

_CELLS_PER_RADIUS = 3.0  # scan level: the finest with cell side ≥ B / this (2.5–4: equal within noise)
_GUESS = 0.07  # first window: r_k(prev) ± this × the distance to the previous query (0.07–0.1 best)
_WIDEN = 4.0  # a missed window is followed by one this many times wider beyond it (then the valid bounds)
_GROUP = 8  # consecutive runs (map rows) per thread task
_SAFETY = 1e-9  # relative widening of B and narrowing of L against rounding (checked anyway)
_TINY = 2.2250738585072014e-308  # np.finfo(float).tiny: r_k = 0 gives an infinite Σ, as cKDTree's path


@numba.njit(cache=True, inline="always")
def _spread(v: np.int64) -> np.int64:
    """Insert a zero bit between the low 16 bits of v (2-D Morton interleaving)."""
    v &= 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    v = (v | (v << 1)) & 0x55555555
    return v


@numba.njit(cache=True, inline="always")
def _cell_of(v: float, lo: float, inv_cell: float, n: int) -> int:
    """Cell index of coordinate v on an axis of n cells from lo, clamped to [0, n − 1]."""
    t = (v - lo) * inv_cell
    if t < 0.0:
        return 0
    if t >= n:
        return n - 1
    return int(t)


@numba.njit(cache=True, parallel=True)
def _count_cells(
    x: np.ndarray, y: np.ndarray, x0: float, y0: float, side: float, levels: int, keys: np.ndarray,
    counts: np.ndarray,
) -> None:  # fmt: skip
    """keys (N,) ← each point's finest-cell Morton key; counts (chunks, 4^levels) ← points per cell of each
    contiguous chunk of the input (zeroed by the caller)."""
    n, chunks = x.shape[0], counts.shape[0]
    cells = 1 << levels
    inv = cells / side
    for c in numba.prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            key = _spread(_cell_of(x[i], x0, inv, cells)) | (_spread(_cell_of(y[i], y0, inv, cells)) << 1)
            keys[i] = key
            counts[c, key] += 1


@numba.njit(cache=True, nogil=True)
def _cell_offsets(counts: np.ndarray, offsets: np.ndarray) -> None:
    """offsets (cells + 1,) ← the cells' first sorted positions; counts (chunks, cells) ← each chunk's first
    slot in each cell (chunk c after chunks < c: the stable order)."""
    chunks, n_cells = counts.shape
    total = 0
    for m in range(n_cells):
        offsets[m] = total
        for c in range(chunks):
            count = counts[c, m]
            counts[c, m] = total
            total += count
    offsets[n_cells] = total


@numba.njit(cache=True, parallel=True)
def _scatter(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, keys: np.ndarray, slots: np.ndarray, xs: np.ndarray,
    ys: np.ndarray, ws: np.ndarray, order: np.ndarray,
) -> None:  # fmt: skip
    """Every point (and its weights) to the next free slot of its cell in its chunk."""
    n, chunks, nq = x.shape[0], slots.shape[0], w.shape[0]
    for c in numba.prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            key = keys[i]
            at = slots[c, key]
            slots[c, key] = at + 1
            order[at] = i
            xs[at] = x[i]
            ys[at] = y[i]
            for q in range(nq):
                ws[q, at] = w[q, i]


def _empty(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """The default :data:`Alloc`: a fresh array."""
    return np.empty(shape, dtype=dtype)


def build_index(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    box: tuple[float, float, float],
    levels: int,
    chunks: int,
    alloc: Alloc = _empty,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counting sort of points (x, y) (N,) [length] with weights w (Q, N) (Q may be 0) into the
    2^levels × 2^levels Morton-ordered cells of the box (x0, y0, side): [x0, x0 + side) × [y0, y0 + side)
    (outside points clamped to the border cells).

    ``chunks`` contiguous slices of the input are counted and scattered in parallel; within a cell chunk c
    goes after chunks < c, so the result is the stable sort whatever the number of chunks. Returns (xs, ys
    (N,), ws (Q, N): the sorted positions and weights; order (N,) int64: sorted position → input index;
    offsets (4^levels + 1,) int64: the finest cell with Morton key m holds sorted positions
    [offsets[m], offsets[m + 1])). The arrays are numpy's (huge pages for large ones: the scatter's random
    writes then miss the TLB far less than in numba-allocated memory). ``alloc`` (name, shape, dtype) gives
    every array, results and scratch ("index_*" names), e.g. reused buffers (:class:`.knn.Workspace`).
    """
    n, nq = len(x), len(w)
    keys = alloc("index_keys", (n,), np.int64)
    counts = alloc("index_counts", (max(int(chunks), 1), 1 << (2 * levels)), np.int64)
    counts[...] = 0
    offsets = alloc("index_offsets", ((1 << (2 * levels)) + 1,), np.int64)
    x0, y0, side = box
    _count_cells(x, y, float(x0), float(y0), float(side), int(levels), keys, counts)
    _cell_offsets(counts, offsets)
    xs, ys = alloc("index_xs", (n,), np.float64), alloc("index_ys", (n,), np.float64)
    ws, order = alloc("index_ws", (nq, n), np.float64), alloc("index_order", (n,), np.int64)
    _scatter(x, y, w, keys, counts, xs, ys, ws, order)
    return xs, ys, ws, order, offsets


@numba.njit(cache=True, parallel=True)
def _subset_count(order: np.ndarray, offsets: np.ndarray, start: int, stop: int, found: np.ndarray) -> None:
    """found[c + 1] ← how many of the particles in cell chunk c have an input index in [start, stop)."""
    chunks, n_cells = found.shape[0] - 1, offsets.shape[0] - 1
    for c in numba.prange(chunks):
        count = 0
        for i in range(offsets[c * n_cells // chunks], offsets[(c + 1) * n_cells // chunks]):
            count += start <= order[i] < stop
        found[c + 1] = count


@numba.njit(cache=True, parallel=True)
def _subset_fill(
    xs: np.ndarray, ys: np.ndarray, ws: np.ndarray, order: np.ndarray, offsets: np.ndarray, start: int,
    stop: int, first: np.ndarray, sx: np.ndarray, sy: np.ndarray, sw: np.ndarray, so: np.ndarray,
    so_off: np.ndarray,
) -> None:  # fmt: skip
    """Copy the subset's particles, cell chunk c from position first[c] on (module docstring)."""
    chunks, n_cells, nq = first.shape[0] - 1, offsets.shape[0] - 1, ws.shape[0]
    for c in numba.prange(chunks):
        t = first[c]
        for cell in range(c * n_cells // chunks, (c + 1) * n_cells // chunks):
            so_off[cell] = t
            for i in range(offsets[cell], offsets[cell + 1]):
                o = order[i]
                if start <= o < stop:
                    sx[t], sy[t], so[t] = xs[i], ys[i], o - start
                    for q in range(nq):
                        sw[q, t] = ws[q, i]
                    t += 1
    so_off[n_cells] = first[chunks]


def subset_index(
    xs: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    start: int,
    stop: int,
    chunks: int,
    alloc: Alloc = _empty,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The index (xs, ys, ws, order, offsets as :func:`build_index`) of the particles with input index in
    [start, stop) (same cells; input index − start) with the weight rows ws (Q', N) (e.g. the first rows of
    the full index's): a sequential filter over ``chunks`` slices of the cells in parallel (the result does
    not depend on ``chunks``). ``alloc``: the result arrays ("subset_*" names), as :func:`build_index`."""
    found = np.zeros(max(int(chunks), 1) + 1, dtype=np.int64)
    _subset_count(order, offsets, int(start), int(stop), found)
    first = np.cumsum(found)
    m, nq = int(first[-1]), len(ws)
    sx, sy = alloc("subset_xs", (m,), np.float64), alloc("subset_ys", (m,), np.float64)
    sw, so = alloc("subset_ws", (nq, m), np.float64), alloc("subset_order", (m,), np.int64)
    so_off = alloc("subset_offsets", offsets.shape, np.int64)
    _subset_fill(xs, ys, ws, order, offsets, int(start), int(stop), first, sx, sy, sw, so, so_off)
    return sx, sy, sw, so, so_off


@numba.njit(cache=True, parallel=True)
def _take_rows(w: np.ndarray, order: np.ndarray, out: np.ndarray) -> None:
    for i in numba.prange(order.shape[0]):
        o = order[i]
        for q in range(w.shape[0]):
            out[q, i] = w[q, o]


def take_rows(w: np.ndarray, order: np.ndarray) -> np.ndarray:
    """(Q, N) array out[q, i] = w[q, order[i]] from weights w (Q, N): the weights in cell order."""
    out = np.empty((len(w), len(order)))
    _take_rows(np.ascontiguousarray(w, dtype=np.float64), order, out)
    return out


@numba.njit(cache=True, inline="always")
def _cell_range(offsets: np.ndarray, levels: int, level: int, cx: int, cy: int) -> tuple[int, int]:
    """[start, stop) of the sorted particles in cell (cx, cy) of ``level``."""
    prefix = _spread(cx) | (_spread(cy) << 1)
    shift = 2 * (levels - level)
    return offsets[prefix << shift], offsets[(prefix + 1) << shift]


@numba.njit(cache=True, inline="always")
def _gap(v: float, lo: float, hi: float) -> float:
    """Distance from v to the interval [lo, hi] (0 inside)."""
    if v < lo:
        return lo - v
    if v > hi:
        return v - hi
    return 0.0


@numba.njit(cache=True, nogil=True)
def _block_bound(
    offsets: np.ndarray, levels: int, x0: float, y0: float, side: float, px: float, py: float, k: int
) -> float:
    """Upper bound on r_k at p from cell counts: the finest level whose 3 × 3 block of cells around p holds
    ≥ k particles; the distance from p to the block's farthest corner (inf if the block touches the box's
    open border)."""
    for level in range(levels, -1, -1):
        cells = 1 << level
        s = side / cells
        cx = _cell_of(px, x0, 1.0 / s, cells)
        cy = _cell_of(py, y0, 1.0 / s, cells)
        count = 0
        for by in range(max(cy - 1, 0), min(cy + 2, cells)):
            for bx in range(max(cx - 1, 0), min(cx + 2, cells)):
                a, b = _cell_range(offsets, levels, level, bx, by)
                count += b - a
        if count >= k:
            if cx - 1 <= 0 or cy - 1 <= 0 or cx + 1 >= cells - 1 or cy + 1 >= cells - 1:
                return np.inf
            dx = max(px - (x0 + (cx - 1) * s), x0 + (cx + 2) * s - px)
            dy = max(py - (y0 + (cy - 1) * s), y0 + (cy + 2) * s - py)
            return np.sqrt(dx * dx + dy * dy)
    return np.inf


@numba.njit(cache=True, nogil=True)
def _cell_runs(
    offsets: np.ndarray,
    levels: int,
    x0: float,
    y0: float,
    side: float,
    px: float,
    py: float,
    b_use: float,
    eps: float,
    run_a: np.ndarray,
    run_b: np.ndarray,
) -> tuple[int, int]:
    """The runs [run_a, run_b) of sorted particles in the cells that come within b_use of p, on the finest
    level with cell side ≥ b_use / _CELLS_PER_RADIUS = C (≤ (2 C + 3)² cells; cells adjacent in Morton order
    merged). Returns (number of runs, number of particles in them)."""
    level = 0
    if b_use < np.inf:
        ratio = side * _CELLS_PER_RADIUS / b_use
        level = min(int(np.floor(np.log2(ratio))), levels) if ratio > 1.0 else 0
    cells = 1 << level
    s = side / cells
    inv = 1.0 / s
    b2 = b_use * b_use
    if b_use < np.inf:
        cy0, cy1 = _cell_of(py - b_use, y0, inv, cells), _cell_of(py + b_use, y0, inv, cells)
    else:
        cy0, cy1 = 0, cells - 1
    n_r, total = 0, 0
    for cy in range(cy0, cy1 + 1):
        ylo = y0 + cy * s - eps if cy > 0 else -np.inf
        yhi = y0 + (cy + 1) * s + eps if cy < cells - 1 else np.inf
        gy = _gap(py, ylo, yhi)
        if gy * gy > b2:
            continue
        if b_use < np.inf:  # the cells of this row that reach the disc
            half = np.sqrt(b2 - gy * gy) + eps
            cx0, cx1 = _cell_of(px - half, x0, inv, cells), _cell_of(px + half, x0, inv, cells)
        else:
            cx0, cx1 = 0, cells - 1
        for cx in range(cx0, cx1 + 1):
            a, b = _cell_range(offsets, levels, level, cx, cy)
            if a == b:
                continue
            if n_r > 0 and run_b[n_r - 1] == a:  # consecutive in Morton order: one run
                run_b[n_r - 1] = b
            else:
                run_a[n_r], run_b[n_r] = a, b
                n_r += 1
            total += b - a
    return n_r, total


@numba.njit(cache=True, nogil=True)
def _scan(
    xs: np.ndarray,
    ys: np.ndarray,
    run_a: np.ndarray,
    run_b: np.ndarray,
    n_r: int,
    px: float,
    py: float,
    b2: float,
    l2: float,
    inner: np.ndarray,
    buf_d: np.ndarray,
    buf_i: np.ndarray,
) -> tuple[int, int]:
    """Sort the particles of the runs by d² (branch-free compaction): indices with d² < l2 into ``inner``,
    (d², index) with l2 ≤ d² ≤ b2 into buf_d, buf_i. Returns (number inner, number buffered).

    Indices and counters are unsigned here and below: numba then skips its negative-index wraparound code
    (≈ 1/3 of this loop's time)."""
    n_in, m, one = np.uint64(0), np.uint64(0), np.uint64(1)
    for r in range(n_r):
        j, stop = np.uint64(run_a[r]), np.uint64(run_b[r])
        while j < stop:
            d2 = (xs[j] - px) ** 2 + (ys[j] - py) ** 2
            is_in = d2 < l2
            inner[n_in] = j
            buf_d[m] = d2
            buf_i[m] = j
            n_in += np.uint64(is_in)
            m += np.uint64((d2 <= b2) & ~is_in)
            j += one
    return int(n_in), int(m)


@numba.njit(cache=True, nogil=True, inline="always")
def _sum_at(w: np.ndarray, idx: np.ndarray, n: int) -> float:
    """Σ_{t < n} w[idx[t]] in four interleaved partial sums (a fixed order; shorter dependency chains)."""
    s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
    t, n4, four = np.uint64(0), np.uint64(n - n % 4), np.uint64(4)
    while t < n4:
        s0 += w[idx[t]]
        s1 += w[idx[t + np.uint64(1)]]
        s2 += w[idx[t + np.uint64(2)]]
        s3 += w[idx[t + np.uint64(3)]]
        t += four
    while t < np.uint64(n):
        s0 += w[idx[t]]
        t += np.uint64(1)
    return (s0 + s1) + (s2 + s3)


@numba.njit(cache=True, nogil=True, inline="always")
def _sum_below(w: np.ndarray, idx: np.ndarray, bins: np.ndarray, target: int, n: int) -> float:
    """Σ_{t < n, bins[t] < target} w[idx[t]], as :func:`_sum_at`."""
    s0, s1 = 0.0, 0.0
    tg = np.uint64(target)
    t, n2, two = np.uint64(0), np.uint64(n - n % 2), np.uint64(2)
    while t < n2:
        s0 += w[idx[t]] if bins[t] < tg else 0.0
        s1 += w[idx[t + np.uint64(1)]] if bins[t + np.uint64(1)] < tg else 0.0
        t += two
    if t < np.uint64(n):
        s0 += w[idx[t]] if bins[t] < tg else 0.0
    return s0 + s1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _run(
    xs: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    offsets: np.ndarray,
    levels: int,
    x0: float,
    y0: float,
    side: float,
    qx: np.ndarray,
    qy: np.ndarray,
    hi0: np.ndarray,
    lo0: np.ndarray,
    guess: np.ndarray,
    near: np.ndarray,
    first: int,
    stop: int,
    k: int,
    sigma: np.ndarray,
    rk: np.ndarray,
) -> int:
    """Queries [first, stop) in order, each bounded by the previous one (module docstring); ws (Q, N).
    Returns the number of scans (≥ 1 per query; the excess counts missed guesses)."""
    nq = ws.shape[0]
    eps = side * 1e-12  # cell rectangles widened by this against the rounding of the binning
    max_runs = int((2 * _CELLS_PER_RADIUS + 3) ** 2)
    run_a = np.empty(max_runs, dtype=np.int64)
    run_b = np.empty(max_runs, dtype=np.int64)
    cap = 8 * k + 64
    inner = np.empty(cap, dtype=np.uint64)
    buf_d = np.empty(cap)
    buf_i = np.empty(cap, dtype=np.uint64)
    bins = np.empty(cap, dtype=np.uint64)
    work = np.empty(cap)
    work_i = np.empty(cap, dtype=np.uint64)
    n_bins_max = 4096
    hist = np.zeros(n_bins_max, dtype=np.int64)
    scans = 0
    prev_x, prev_y, prev_r = 0.0, 0.0, -1.0
    for i in range(first, stop):
        px, py = qx[i], qy[i]
        valid_hi, valid_lo = hi0[i], lo0[i]
        centre, step = guess[i], near[i]  # the caller's guess (if near < inf)
        if prev_r >= 0.0:
            prev_step = np.sqrt((px - prev_x) ** 2 + (py - prev_y) ** 2)
            valid_hi = min(valid_hi, prev_r + prev_step)
            valid_lo = max(valid_lo, prev_r - prev_step)
            if prev_step < step:
                centre, step = prev_r, prev_step
        upper, lower = valid_hi, valid_lo
        width = 0.0  # the guess window's half-width: widened × _WIDEN per miss (0: none, valid bounds)
        if step < np.inf:
            width = _GUESS * step
            upper = min(valid_hi, centre + width)
            lower = max(valid_lo, centre - width)
        if not valid_hi < np.inf:
            valid_hi = _block_bound(offsets, levels, x0, y0, side, px, py, k)
            upper = valid_hi
        while True:
            scans += 1
            b_use = upper * (1.0 + _SAFETY) + eps
            l_use = lower * (1.0 - _SAFETY) - eps
            b2 = b_use * b_use if b_use < np.inf else np.inf
            l2 = l_use * l_use if l_use > 0.0 else -1.0
            n_r, total = _cell_runs(offsets, levels, x0, y0, side, px, py, b_use, eps, run_a, run_b)
            if total > cap:  # grow the buffers (kept for the rest of the run)
                cap = 2 * total
                inner = np.empty(cap, dtype=np.uint64)
                buf_d = np.empty(cap)
                buf_i = np.empty(cap, dtype=np.uint64)
                bins = np.empty(cap, dtype=np.uint64)
                work = np.empty(cap)
                work_i = np.empty(cap, dtype=np.uint64)
            n_in, m = _scan(xs, ys, run_a, run_b, n_r, px, py, b2, l2, inner, buf_d, buf_i)
            width *= _WIDEN
            if n_in >= k:  # r_k < L: L is an upper bound; lower L (a wider window, then the valid bound)
                if lower == valid_lo:  # that was the given lower bound: wrong, so drop it
                    valid_lo = 0.0
                upper, lower = l_use, max(valid_lo, l_use - width) if width > 0.0 else valid_lo
                continue
            if (
                n_in + m < k and b_use < np.inf
            ):  # r_k > B: B is a lower bound; widen B (window, valid, doubling)
                lower = b_use
                if upper < valid_hi:
                    upper = min(valid_hi, b_use + width) if width > 0.0 else valid_hi
                else:
                    upper = np.inf if b_use * 2.0 > 4.0 * side else 2.0 * b_use
                    valid_hi = upper
                continue
            break
        if n_in + m < k:  # every particle scanned and fewer than k: cannot happen for 1 <= k <= N
            sigma[i, :] = np.nan
            rk[i] = np.nan
            prev_r = -1.0
            continue
        # the k-th nearest is the buffered candidate of rank kk: a histogram of the buffered d² over
        # [L², B²] (≈ m / 4 bins) finds the bin holding it, a quickselect inside that bin its d²
        kk = k - 1 - n_in
        d_lo = max(l2, 0.0)
        d_max = b2
        if not b2 < np.inf:
            d_max = 0.0
            for t in range(m):
                d_max = max(d_max, buf_d[t])
        n_bins = min(max(m // 4, 1), n_bins_max)
        width = (d_max - d_lo) / n_bins
        inv_w = 1.0 / width if width > 0.0 else 0.0
        hist[:n_bins] = 0
        top = np.uint64(n_bins - 1)
        for t in range(np.uint64(m)):
            bt = min(np.uint64(max((buf_d[t] - d_lo) * inv_w, 0.0)), top)
            bins[t] = bt
            hist[bt] += 1
        target, below = 0, 0
        while below + hist[target] <= kk:
            below += hist[target]
            target += 1
        t_n = np.uint64(0)
        tg = np.uint64(target)
        for t in range(np.uint64(m)):  # the target bin's candidates (branch-free compaction)
            work[t_n] = buf_d[t]
            work_i[t_n] = buf_i[t]
            t_n += np.uint64(bins[t] == tg)
        t_n = int(t_n)
        for t in range(t_n):  # their d² in order with work_i (the select reorders work)
            buf_d[t] = work[t]
        d2k = quickselect(work, t_n, kk - below)
        n_less, n_eq = n_in + below, 0
        for t in range(t_n):
            n_less += buf_d[t] < d2k
            n_eq += buf_d[t] == d2k
        share = (k - n_less) / n_eq  # the tied particles' share (1 without ties)
        r = np.sqrt(d2k)
        area = np.pi * max(r, _TINY) ** 2
        for q in range(nq):
            wq = ws[q]
            acc = _sum_at(wq, inner, n_in) + _sum_below(wq, buf_i, bins, target, m)
            tq = 0.0
            for t in range(t_n):
                d2 = buf_d[t]
                wt = wq[work_i[t]]
                acc += wt if d2 < d2k else 0.0
                tq += wt if d2 == d2k else 0.0
            sigma[i, q] = (acc + share * tq) / area
        rk[i] = r
        prev_x, prev_y, prev_r = px, py, r
    return scans


@numba.njit(cache=True, parallel=True)
def _runs_parallel(
    xs: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    offsets: np.ndarray,
    levels: int,
    x0: float,
    y0: float,
    side: float,
    qx: np.ndarray,
    qy: np.ndarray,
    hi0: np.ndarray,
    lo0: np.ndarray,
    guess: np.ndarray,
    near: np.ndarray,
    run_start: np.ndarray,
    schedule: np.ndarray,
    group: int,
    k: int,
    sigma: np.ndarray,
    rk: np.ndarray,
) -> int:
    """The runs in groups of ``group`` consecutive ones (their particles overlap: cache reuse), the groups
    in the order ``schedule`` (prange gives each thread a contiguous block of it)."""
    n_runs = run_start.shape[0] - 1
    scans = 0
    for t in numba.prange(schedule.shape[0]):
        for r in range(schedule[t] * group, min((schedule[t] + 1) * group, n_runs)):
            scans += _run(xs, ys, ws, offsets, levels, x0, y0, side, qx, qy, hi0, lo0, guess, near,
                          run_start[r], run_start[r + 1], k, sigma, rk)  # fmt: skip
    return scans


def query_runs(
    xs: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    offsets: np.ndarray,
    levels: int,
    box: tuple[float, float, float],
    qx: np.ndarray,
    qy: np.ndarray,
    run_start: np.ndarray,
    k: int,
    upper: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    guess: np.ndarray | None = None,
    near: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact k-th-neighbour radius and weight sums at query points (module docstring).

    xs, ys (N,), offsets, levels: an index of :func:`build_index` (or :func:`subset_index`) over the box
    (x0, y0, side) [length]; ws (Q, N): the weights in the same (cell) order (:func:`take_rows`). qx, qy (M,):
    query points, grouped in runs [run_start[r], run_start[r + 1]) (run_start (R + 1,) increasing from 0 to
    M), each evaluated in order with each query bounded by the previous one (fast when consecutive queries
    are close). upper, lower (M,): optional bounds on r_k per query (inf / 0 where unknown; wrong bounds cost
    time, not exactness). guess, near (M,): optional guess of r_k made at distance ``near`` (inf: none),
    used instead of the previous query's r_k when nearer. 1 ≤ k ≤ N. Returns (Σ_q = Σ_{k nearest} w_q /
    (π r_k²) (M, Q) [weight / length²], r_k (M,) [length], the number of scans (≥ M; the excess: retried
    guesses)).
    """
    n, m = xs.shape[0], qx.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= N (k={k}, N={n})")
    if ws.ndim != 2 or ws.shape[1] != n:
        raise ValueError(f"ws has shape {ws.shape}, expected (Q, {n})")
    upper = np.full(m, np.inf) if upper is None else np.ascontiguousarray(upper, dtype=np.float64)
    lower = np.zeros(m) if lower is None else np.ascontiguousarray(lower, dtype=np.float64)
    guess = np.zeros(m) if guess is None else np.ascontiguousarray(guess, dtype=np.float64)
    near = np.full(m, np.inf) if near is None else np.ascontiguousarray(near, dtype=np.float64)
    sigma = np.empty((m, ws.shape[0]))
    rk = np.empty(m)
    run_start = np.ascontiguousarray(run_start, dtype=np.int64)
    n_runs = len(run_start) - 1
    # groups of _GROUP consecutive runs (map rows: each reuses the particles its predecessor brought into the
    # cache), interleaved so that the contiguous block of groups that each thread gets spans the whole map
    n_groups = -(-n_runs // _GROUP)
    schedule = np.concatenate([np.arange(s, n_groups, 4, dtype=np.int64) for s in range(4)])
    x0, y0, side = box
    scans = _runs_parallel(
        xs, ys, np.ascontiguousarray(ws, dtype=np.float64), offsets, int(levels), float(x0), float(y0),
        float(side), np.ascontiguousarray(qx, dtype=np.float64), np.ascontiguousarray(qy, dtype=np.float64),
        upper, lower, guess, near, run_start, schedule, _GROUP, int(k), sigma, rk,
    )  # fmt: skip
    return sigma, rk, int(scans)


@numba.njit(cache=True, nogil=True)
def interpolate_level(
    rows: np.ndarray,
    cols: np.ndarray,
    below: np.ndarray,
    above: np.ndarray,
    ratio: float,
    pixel: float,
    sigma: np.ndarray,
    radius: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    known: np.ndarray,
) -> np.ndarray:
    """One level of the adaptive hierarchy of :mod:`.knn` over the grid of node rows × cols (ascending).

    below, above (npix,): the coarse nodes at or below / at or above each pixel index. Each unknown node
    whose coarse node cell [r0, r1] × [c0, c1] has min corner radius ≥ ratio × the cell's side (in pixels
    × pixel) gets σ and radius interpolated bilinearly, and valid bounds on its r_k from the corners'
    (r_k is 1-Lipschitz); sigma (Q, n, n), radius, upper, lower, known (n, n) are updated in place.
    Returns (M, 6): the other unknown nodes in row-major order, as (row, col, upper, lower) bounds and a
    guess of r_k (the corners' radii interpolated) with the distance to the nearest corner [length].
    """
    nq = sigma.shape[0]
    out = np.empty((rows.shape[0] * cols.shape[0], 6))
    m = 0
    for r in rows:
        r0, r1 = below[r], above[r]
        ty = (r - r0) / (r1 - r0) if r1 > r0 else 0.0
        for c in cols:
            if known[r, c]:
                continue
            c0, c1 = below[c], above[c]
            tx = (c - c0) / (c1 - c0) if c1 > c0 else 0.0
            hi, lo, rmin, near = np.inf, 0.0, np.inf, np.inf
            for a in (r0, r1):
                for b in (c0, c1):
                    d = np.sqrt(float((r - a) ** 2 + (c - b) ** 2)) * pixel
                    hi = min(hi, upper[a, b] + d)
                    lo = max(lo, lower[a, b] - d)
                    rmin = min(rmin, radius[a, b])
                    near = min(near, d)
            cell = max(max(r1 - r0, c1 - c0), 1) * pixel
            w00, w01 = (1 - ty) * (1 - tx), (1 - ty) * tx
            w10, w11 = ty * (1 - tx), ty * tx
            guess = (w00 * radius[r0, c0] + w01 * radius[r0, c1]
                     + w10 * radius[r1, c0] + w11 * radius[r1, c1])  # fmt: skip
            if rmin >= ratio * cell:
                for q in range(nq):
                    sigma[q, r, c] = (w00 * sigma[q, r0, c0] + w01 * sigma[q, r0, c1]
                                      + w10 * sigma[q, r1, c0] + w11 * sigma[q, r1, c1])  # fmt: skip
                radius[r, c] = guess
                upper[r, c], lower[r, c] = hi, lo
                known[r, c] = True
            else:
                out[m, 0], out[m, 1], out[m, 2], out[m, 3] = r, c, hi, lo
                out[m, 4], out[m, 5] = guess, near
                m += 1
    return out[:m]
