"""Bitmap kernels (kernels/bitmap.py) against the list-of-bools references in naive.py."""

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fphint_kernels.kernels import bitmap as bk

U64 = st.integers(min_value=0, max_value=2**64 - 1)
NONZERO = st.integers(min_value=1, max_value=2**64 - 1)
EDGE_WORDS = [1, 2**63, 2**64 - 1, 2**32, 2**32 - 1, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA]


@st.composite
def bitmaps(draw, max_words=6):
    """(uint64 words, nbits): random words, sometimes sparse or full, nbits within the last word."""
    nw = draw(st.integers(min_value=1, max_value=max_words))
    kind = draw(st.sampled_from(["random", "sparse", "full", "empty"]))
    if kind == "random":
        words = draw(st.lists(U64, min_size=nw, max_size=nw))
    elif kind == "sparse":
        words = draw(
            st.lists(st.sampled_from([0, 0, 0, 1, 2**63, 2**17]), min_size=nw, max_size=nw)
        )
    elif kind == "full":
        words = [2**64 - 1] * nw
    else:
        words = [0] * nw
    nbits = draw(st.integers(min_value=(nw - 1) * 64 + 1, max_value=nw * 64))
    return np.array(words, dtype=np.uint64), nbits


def ranges(nbits):
    return st.integers(0, nbits).flatmap(lambda s: st.tuples(st.just(s), st.integers(0, nbits - s)))


@settings(max_examples=200, deadline=None)
@given(U64)
def test_popcount64(x):
    assert bk.popcount64(np.uint64(x)) == naive.popcount64(x)


@settings(max_examples=200, deadline=None)
@given(NONZERO)
def test_clz(x):
    assert bk.clz_index64(np.uint64(x)) == naive.clz_index64(x)


@pytest.mark.parametrize("x", EDGE_WORDS)
def test_word_edges(x):
    assert bk.popcount64(np.uint64(x)) == naive.popcount64(x)
    assert bk.clz_index64(np.uint64(x)) == naive.clz_index64(x)


def test_word_references_by_hand():
    # the references themselves, on words whose answers are known
    assert naive.popcount64(2**64 - 1) == 64
    assert naive.clz_index64(2**63) == 63 and naive.clz_index64(0b10100) == 4
    assert naive.bits_to_words(naive.words_to_bits([5, 2**63])) == [5, 2**63]


@settings(max_examples=100, deadline=None)
@given(bitmaps(), st.data())
def test_single_bits(bm_nbits, data):
    bm, nbits = bm_nbits
    ref = naive.words_to_bits(bm)
    for _ in range(8):
        i = data.draw(st.integers(0, nbits - 1))
        op = data.draw(st.sampled_from(["test", "set", "clear"]))
        if op == "test":
            assert bk.test_bit(bm, i) == naive.test_bit(ref, i)
        elif op == "set":
            assert bk.set_bit(bm, i) == naive.set_bit(ref, i)
        else:
            assert bk.clear_bit(bm, i) == naive.clear_bit(ref, i)
        assert naive.words_to_bits(bm) == ref


@settings(max_examples=150, deadline=None)
@given(bitmaps(), st.data())
def test_ranges(bm_nbits, data):
    bm, nbits = bm_nbits
    ref = naive.words_to_bits(bm)
    start, n = data.draw(ranges(nbits))
    op = data.draw(st.sampled_from(["set", "clear"]))
    if op == "set":
        assert bk.set_range(bm, start, n) == naive.set_range(ref, start, n)
    else:
        assert bk.clear_range(bm, start, n) == naive.clear_range(ref, start, n)
    assert naive.words_to_bits(bm) == ref
    assert bk.popcount(bm) == naive.popcount(ref)


@pytest.mark.parametrize(
    "start,n", [(0, 64), (0, 128), (63, 2), (64, 64), (1, 190), (191, 1), (5, 0)]
)
def test_ranges_on_word_edges(start, n):
    bm = np.zeros(3, dtype=np.uint64)
    ref = [False] * 192
    assert bk.set_range(bm, start, n) == naive.set_range(ref, start, n) == n
    assert naive.words_to_bits(bm) == ref
    assert bk.popcount(bm) == n
    assert bk.clear_range(bm, start, n) == naive.clear_range(ref, start, n) == n
    assert not bm.any()


@settings(max_examples=150, deadline=None)
@given(bitmaps(max_words=4), st.data())
def test_or_merge(dst_nbits, data):
    dst, _ = dst_nbits
    src = np.array(data.draw(st.lists(U64, min_size=len(dst), max_size=len(dst))), dtype=np.uint64)
    ref_dst = naive.words_to_bits(dst)
    ref_src = naive.words_to_bits(src)
    assert bk.or_merge(dst, src) == naive.or_merge(ref_dst, ref_src)
    assert naive.words_to_bits(dst) == ref_dst


def test_words_for():
    assert [bk.words_for(n) for n in (0, 1, 64, 65, 128)] == [0, 1, 1, 2, 2]
