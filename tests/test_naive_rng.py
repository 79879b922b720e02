"""MRG32k3a streams and draws (kernels/rng.py) against the textbook recurrence in naive.py."""

import math

import naive
import numpy as np
import pytest

from fphint_kernels.kernels import rng as rk


@pytest.fixture(params=[0, 1, 12345, 2**40 + 7])
def stream(request):
    return rk.seed_streams(request.param, 3)[1]


def test_reference_by_hand():
    # from all-12345 seeds, worked by hand:
    # x1 = (1403580 - 810728) * 12345 mod m1 = 7318757940 - 4294967087 = 3023790853
    # x2 = (527612 - 1370589) * 12345 mod m2 = -10406551065 + 3 * 4294944443 = 2478282264
    g = naive.NaiveMRG([12345] * 6)
    assert g.uniform() == (3023790853 - 2478282264) * (1.0 / 4294967088.0)
    assert g.state() == [12345, 12345, 3023790853, 12345, 12345, 2478282264]


def test_uniform_stream(stream):
    kernel_state = stream.copy()
    ref = naive.NaiveMRG(stream)
    for _ in range(2000):
        u = rk.rng_uniform(kernel_state)
        assert u == ref.uniform()
        assert 0.0 < u < 1.0
    assert kernel_state.tolist() == ref.state()


def test_uniform_zero_difference():
    # states where x1[n] == x2[n]: the output is m1/(m1+1), never 0
    g = naive.NaiveMRG([0, 0, 0, 0, 0, 0])
    assert g.uniform() == naive.M1 * naive.NORM
    s = np.zeros(6, dtype=np.int64)
    assert rk.rng_uniform(s) == naive.M1 * naive.NORM


def test_below(stream):
    ks = stream.copy()
    ref = naive.NaiveMRG(stream)
    for n in [1, 2, 3, 7, 64, 1000, 2**31]:
        for _ in range(50):
            k = rk.rng_below(ks, n)
            assert k == ref.below(n)
            assert 0 <= k < n


def test_normal_exponential(stream):
    ks = stream.copy()
    ref = naive.NaiveMRG(stream)
    for _ in range(300):
        assert rk.rng_normal(ks) == ref.normal()
        assert rk.rng_exponential(ks, 450.0) == ref.exponential(450.0)
    assert ks.tolist() == ref.state()


@pytest.mark.parametrize("lam", [0.0, -1.0, 1e-6, 0.25, 1.0, 5.5, 29.99, 30.0, 250.0, 1e5])
def test_poisson(stream, lam):
    ks = stream.copy()
    ref = naive.NaiveMRG(stream)
    draws = []
    for _ in range(200):
        k = rk.rng_poisson(ks, lam)
        assert k == ref.poisson(lam)
        draws.append(k)
    assert ks.tolist() == ref.state()
    if lam > 0:
        # loose sanity check of the mean (200 draws)
        assert abs(np.mean(draws) - lam) < 6 * math.sqrt(lam / 200) + 0.05


def test_seed_streams_shapes_and_ranges():
    s = rk.seed_streams(7, 5)
    assert s.shape == (5, 6) and s.dtype == np.int64
    assert (s[:, :3] < naive.M1).all() and (s[:, 3:] < naive.M2).all() and (s >= 0).all()
    assert not (s[0] == s[1]).all()
