"""The buddy allocator (kernels/buddy.py) against the set-based textbook one in naive.py."""

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fphint_kernels.kernels import buddy as kb
from fphint_kernels.kernels import layout as S


class KernelBuddy:
    """The kernel's arrays for n pages, with the naive allocator's method names."""

    def __init__(self, n, low_first=False, zone_start=0):
        self.rec = S.new_state()
        self.st = self.rec[0]
        self.st["n"] = n
        self.st["alloc_low"] = int(low_first)
        self.st["zone_start"] = zone_start
        self.bd = kb.new_buddy(n)
        self.n = n

    def add_range(self, lo, hi):
        kb.buddy_add_range(self.st, self.bd, lo, hi)

    def alloc(self, k):
        return int(kb.buddy_alloc(self.st, self.bd, k))

    def free_block(self, pfn, k):
        kb.buddy_free(self.st, self.bd, pfn, k)

    @property
    def nr_free_pages(self):
        return int(self.st["nr_free_pages"])

    def nr_free(self):
        return self.bd.nr_free.tolist()

    def free_order(self):
        return self.bd.free_order.tolist()

    def free_pages(self):
        out = np.zeros((self.n + 63) // 64, dtype=np.uint64)
        kb.free_page_bitmap(self.bd.free_order, out)
        return naive.words_to_bits(out)[: self.n]


def assert_same(kern, ref):
    assert kern.nr_free() == ref.nr_free()
    assert kern.nr_free_pages == ref.nr_free_pages
    assert kern.free_order() == ref.free_order()


def assert_invariants(ref, allocated):
    """Free blocks are aligned, inside [0, n), disjoint from each other and from allocations;
    no two free buddies of the same order are left unmerged."""
    owner = [None] * ref.n
    for k, blocks in enumerate(ref.free):
        for pfn in blocks:
            assert pfn % 2**k == 0 and pfn + 2**k <= ref.n
            assert ref.buddy_of(pfn, k) not in blocks or k == naive.MAX_ORDER
            for p in range(pfn, pfn + 2**k):
                assert owner[p] is None
                owner[p] = "free"
    for pfn, k in allocated:
        for p in range(pfn, pfn + 2**k):
            assert owner[p] is None
            owner[p] = "used"
    assert sum(1 for o in owner if o == "free") == ref.nr_free_pages


def run_ops(n, lo, hi, ops, low_first=False, zone_start=0):
    kern = KernelBuddy(n, low_first, zone_start)
    ref = naive.NaiveBuddy(n, low_first, zone_start)
    kern.add_range(lo, hi)
    ref.add_range(lo, hi)
    assert_same(kern, ref)
    allocated = []
    for op, arg in ops:
        if op == "alloc":
            a, b = kern.alloc(arg), ref.alloc(arg)
            assert a == b
            if a >= 0:
                allocated.append((a, arg))
        elif allocated:
            pfn, k = allocated.pop(arg % len(allocated))
            kern.free_block(pfn, k)
            ref.free_block(pfn, k)
        assert_same(kern, ref)
    assert_invariants(ref, allocated)
    assert kern.free_pages() == ref.free_pages()
    return kern, ref, allocated


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, naive.MAX_ORDER)),
        st.tuples(st.just("alloc"), st.integers(0, 2)),
        st.tuples(st.just("free"), st.integers(0, 10**6)),
    ),
    max_size=60,
)


@st.composite
def layouts(draw):
    n = draw(st.one_of(st.integers(1, 5000), st.sampled_from([1024, 2048, 4096, 3072 + 17])))
    lo = draw(st.integers(0, n))
    hi = draw(st.integers(lo, n))
    return n, lo, hi


@settings(max_examples=120, deadline=None)
@given(layouts(), OPS, st.booleans())
def test_random_sequences(layout, ops, low_first):
    run_ops(*layout, ops, low_first)


@settings(max_examples=120, deadline=None)
@given(layouts(), OPS, st.integers(1, 5000))
def test_random_sequences_with_a_preferred_zone(layout, ops, zone_start):
    """A guest with a Normal zone (``zone_start``, any pfn here): blocks there first, the
    smallest order that has one, lowest first; then anywhere."""
    run_ops(*layout, ops, True, zone_start)


def test_the_preferred_zone_goes_first():
    kern, ref, allocated = run_ops(4096, 0, 4096, [("alloc", 0), ("alloc", 10), ("alloc", 10),
                                                   ("alloc", 10), ("alloc", 10)], True, 3072)  # fmt: skip
    assert [pfn for pfn, _ in allocated] == [3072, 0, 1024, 2048, -1][: len(allocated)]


@pytest.mark.parametrize(
    "n,lo,hi",
    [
        (1024, 0, 1024),
        (3000, 0, 3000),
        (4096, 1, 4095),
        (5000, 17, 4093),
        (2048, 1023, 1025),
        (100, 0, 100),
        (1, 0, 1),
        (4096, 0, 0),
    ],
)
def test_add_range_odd(n, lo, hi):
    kern, ref, _ = run_ops(n, lo, hi, [])
    assert ref.nr_free_pages == hi - lo


@pytest.mark.parametrize("k", [0, 3, naive.MAX_ORDER])
def test_exhaust_then_free_in_random_order(k):
    n = 3 * 1024 + 512 + 40
    rng = np.random.default_rng(k)
    kern, ref, allocated = run_ops(n, 5, n - 3, [])
    while True:
        a, b = kern.alloc(k), ref.alloc(k)
        assert a == b
        if a < 0:
            break
        allocated.append((a, k))
    assert_same(kern, ref)
    assert ref.nr_free_pages < 2**k or all(len(s) == 0 for s in ref.free[k:])
    for i in rng.permutation(len(allocated)):
        pfn, kk = allocated[i]
        kern.free_block(pfn, kk)
        ref.free_block(pfn, kk)
        assert_same(kern, ref)
    # everything merged back into the boot-time blocks
    fresh = naive.NaiveBuddy(n)
    fresh.add_range(5, n - 3)
    assert ref.free == fresh.free


def test_policy_by_hand():
    # two 1024-page blocks: an order-0 request splits the higher one and returns its first page
    ref = naive.NaiveBuddy(2048)
    ref.add_range(0, 2048)
    assert ref.nr_free() == [0] * 10 + [2]
    assert ref.alloc(0) == 1024
    assert ref.nr_free() == [1] * 10 + [1]
    assert ref.alloc(1) == 1026
    ref.free_block(1024, 0)
    ref.free_block(1026, 1)
    assert ref.nr_free() == [0] * 10 + [2]
    # a Linux 5.10+ guest takes the lowest block first, splitting it the same way
    low = naive.NaiveBuddy(2048, low_first=True)
    low.add_range(0, 2048)
    assert low.alloc(0) == 0
    assert low.alloc(1) == 2
    assert low.alloc(10) == 1024
