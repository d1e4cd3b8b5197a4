"""Kendall's tau and Krippendorff's alpha against values computed by hand (and Krippendorff's own example)."""
import math

import pytest

from lmforge.feedback.agreement import kendall_tau, krippendorff_alpha, mean_pairwise_tau


def test_kendall_tau_by_hand():
    # one swapped pair out of 6: (5 concordant - 1 discordant) / 6
    assert kendall_tau([0, 1, 2, 3], [1, 0, 2, 3]) == pytest.approx(4 / 6)
    assert kendall_tau([0, 1, 2], [0, 1, 2]) == 1.0
    assert kendall_tau([0, 1, 2], [2, 1, 0]) == -1.0
    # tau-b with a tie in x: C=5, D=0, n0=6, ties in x n1=1, in y n2=0 -> 5 / sqrt(5 * 6)
    assert kendall_tau([0, 1, 1, 2], [0, 1, 2, 3]) == pytest.approx(5 / math.sqrt(30))
    assert kendall_tau([1, 1, 1], [0, 1, 2]) is None  # no variation: undefined
    with pytest.raises(ValueError):
        kendall_tau([0, 1], [0, 1, 2])


def test_mean_pairwise_tau_pools_pairs_over_units():
    # unit 1: three labelers -> pairs (a,b)=1, (a,c)=-1, (b,c)=-1; unit 2: one pair = 1/3 (K=3, one swap)
    units = [[[0, 1, 2], [0, 1, 2], [2, 1, 0]], [[0, 1, 2], [1, 0, 2]]]
    mean, n = mean_pairwise_tau(units)
    assert n == 4
    assert mean == pytest.approx((1 - 1 - 1 + 1 / 3) / 4)
    assert mean_pairwise_tau([[[0, 1]]]) == (None, 0)  # one labeler: nothing to compare


def test_alpha_small_example_by_hand():
    # units (1,1), (2,2), (3,1): o11=2, o22=2, o13=o31=1; n1=3, n2=2, n3=1, n=6
    units = [(1, 1), (2, 2), (3, 1)]
    # interval: Do sum = 2*1*4 = 8; De sum = 2*(3*2*1 + 3*1*4 + 2*1*1) = 40; alpha = 1 - 5*8/40 = 0
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.0)
    # nominal: Do sum = 2; De sum = 2*(6 + 3 + 2) = 22; alpha = 1 - 5*2/22
    assert krippendorff_alpha(units, "nominal") == pytest.approx(1 - 10 / 22)
    # ordinal: d(1,2) = (5 - 2.5)^2 = 6.25, d(1,3) = (6 - 2)^2 = 16, d(2,3) = (3 - 1.5)^2 = 2.25
    # Do sum = 2*16 = 32; De sum = 2*(6*6.25 + 3*16 + 2*2.25) = 180; alpha = 1 - 5*32/180 = 1/9
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(1 / 9)


def test_alpha_krippendorff_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders, 12 units, missing values.
    n = None
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
              [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    units = list(zip(*coders))
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_alpha_edge_cases():
    assert krippendorff_alpha([(3, 3), (5, 5)]) == 1.0  # perfect agreement with variation
    assert krippendorff_alpha([(4, 4), (4, 4)]) is None  # no variation at all: undefined
    assert krippendorff_alpha([(1,), (2, None)]) is None  # nothing pairable
    assert krippendorff_alpha([(1, 7), (7, 1)], "interval") < 0  # systematic disagreement
    with pytest.raises(ValueError):
        krippendorff_alpha([(1, 2)], "ratio")
