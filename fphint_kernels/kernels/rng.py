"""MRG32k3a random streams (L'Ecuyer 1999) in int64 arithmetic.

Why not ``np.random`` inside the kernels: its stream differs between Numba and NumPy for most
distributions, so a run would not be reproducible with the JIT disabled.  MRG32k3a needs only
products below 2**53, so it is exact in int64 both compiled and interpreted.

References
----------
P. L'Ecuyer, "Good Parameters and Implementations for Combined Multiple Recursive Random Number
Generators", Operations Research 47(1), 1999, doi:10.1287/opre.47.1.159, Table II (MRG32k3a).
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit

_M1 = 4294967087
_M2 = 4294944443
_A12 = 1403580
_A13N = 810728
_A21 = 527612
_A23N = 1370589
_NORM = 1.0 / (_M1 + 1.0)


def seed_streams(seed: int, n_streams: int) -> np.ndarray:
    """Independent MRG32k3a states, one row of 6 int64 per stream, from ``seed``.

    The states are drawn from ``np.random.SeedSequence(seed)`` so that nearby seeds give
    unrelated streams.
    """
    ss = np.random.SeedSequence(seed)
    raw = ss.generate_state(6 * n_streams, dtype=np.uint32).astype(np.int64).reshape(n_streams, 6)
    raw[:, :3] %= _M1
    raw[:, 3:] %= _M2
    raw[:, 0] |= 1  # never all zero
    raw[:, 3] |= 1
    return raw


@jit
def rng_uniform(rng):
    """One uniform draw in (0, 1) from the stream ``rng`` (int64[6], updated in place)."""
    p1 = (_A12 * rng[1] - _A13N * rng[0]) % _M1
    rng[0] = rng[1]
    rng[1] = rng[2]
    rng[2] = p1
    p2 = (_A21 * rng[5] - _A23N * rng[3]) % _M2
    rng[3] = rng[4]
    rng[4] = rng[5]
    rng[5] = p2
    z = p1 - p2
    if z <= 0:
        z += _M1
    return z * _NORM


@jit
def rng_below(rng, n):
    """A uniform integer in [0, n) (n >= 1)."""
    k = int(rng_uniform(rng) * n)
    return k if k < n else n - 1


@jit
def rng_normal(rng):
    """A standard normal draw (Box-Muller)."""
    u1 = rng_uniform(rng)
    u2 = rng_uniform(rng)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@jit
def rng_exponential(rng, mean):
    """An exponential draw with the given mean."""
    return -math.log(rng_uniform(rng)) * mean


@jit
def rng_poisson(rng, lam):
    """A Poisson draw: Knuth's product method below 30, a rounded normal above."""
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        limit = math.exp(-lam)
        k = 0
        p = rng_uniform(rng)
        while p > limit:
            k += 1
            p *= rng_uniform(rng)
        return k
    x = lam + math.sqrt(lam) * rng_normal(rng) + 0.5
    return int(x) if x > 0.0 else 0
