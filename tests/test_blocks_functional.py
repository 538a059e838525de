"""The pure math of the block library against hand-computed cases and closed-form formulas."""

import pytest

from speechconv.blocks import functional as SF


@pytest.mark.parametrize(
    "n, m, s, expected",
    [(32, 5, 1, 28), (28, 2, 2, 14), (10, 5, 1, 6), (10, 5, 2, 3), (10, 5, 3, 2), (5, 5, 1, 1), (4, 5, 1, 0)],
)
def test_valid_output_size_is_floor_formula(n, m, s, expected):
    assert SF.output_size(n, m, s, padding="valid") == expected
    if n >= m:
        assert expected == (n - m) // s + 1


@pytest.mark.parametrize("m", range(1, 9))
@pytest.mark.parametrize("d", [1, 2, 3])
def test_same_padding_splits_span_minus_one(m, d):
    left, right = SF.padding_amounts("same", m, d)
    span = (m - 1) * d + 1
    assert left + right == span - 1
    assert abs(left - right) <= 1
    # stride 1 "same" keeps the length
    assert SF.output_size(37, m, 1, d, "same") == 37


@pytest.mark.parametrize("m, d", [(1, 1), (3, 1), (3, 2), (5, 3)])
def test_causal_padding_is_all_left(m, d):
    left, right = SF.padding_amounts("causal", m, d)
    assert (left, right) == ((m - 1) * d, 0)
    # with stride S, causal gives ceil(N / S) outputs
    for n in (1, 7, 20):
        for s in (1, 2, 3):
            assert SF.output_size(n, m, s, d, "causal") == -(-n // s)


def test_effective_kernel_and_bad_mode():
    assert SF.effective_kernel(3, 2) == 5
    assert SF.effective_kernel(2, 6) == 7
    with pytest.raises(ValueError):
        SF.padding_amounts("reflect", 3)


def test_parameter_formula_matches_seed():
    # K_J * (K_{J-1} * L_J^2 + 1)
    assert SF.conv_params(1, 6, (5, 5)) == 6 * (1 * 25 + 1) == 156
    assert SF.conv_params(6, 16, (5, 5)) == 16 * (6 * 25 + 1) == 2416
    assert SF.conv_params(16, 16, 3, groups=16) == 16 * (1 * 3 + 1)
    assert SF.conv_params(4, 8, 3, bias=False) == 8 * 4 * 3
    assert SF.linear_params(400, 120) == 48120
    lenet = (SF.conv_params(1, 6, (5, 5)) + SF.conv_params(6, 16, (5, 5)) + SF.linear_params(400, 120)
             + SF.linear_params(120, 84) + SF.linear_params(84, 10))
    assert lenet == 61706


def test_macs():
    # 6 maps of 28x28, each output needs 1*5*5 MACs
    assert SF.conv_macs(1, 6, (5, 5), (28, 28)) == 6 * 28 * 28 * 25
    assert SF.conv_macs(8, 8, 3, (10,), groups=8) == 8 * 10 * 3
    assert SF.linear_macs(84, 10) == 840


def test_receptive_field_composition_by_hand():
    # conv k3 s1 causal, pool k2 s2, conv k3 d2 causal
    layers = [SF.AxisGeometry(3, 1, 1, 2), SF.AxisGeometry(2, 2, 1, 0), SF.AxisGeometry(3, 1, 2, 4)]
    field = SF.receptive_field(layers)
    # size: 1 + 2*1 = 3; +1*1 = 4; +4*2 = 12. stride 2. offset: -2, -2, -2 - 4*2 = -10
    assert (field.size, field.stride, field.offset) == (12, 2, -10)
    assert field.span_of(0) == (-10, 1)
    assert field.span_of(5) == (0, 11)
    assert field.seconds(hop_length=160, win_length=400, sample_rate=16000) == pytest.approx((11 * 160 + 400) / 16000)


def test_lenet_receptive_field():
    # 5x5 conv: 5; 2x2/2 pool: +1 -> 6 (jump 2); 5x5 conv: +4*2 -> 14; 2x2/2 pool: +1*2 -> 16 (jump 4)
    layers = [SF.AxisGeometry(5), SF.AxisGeometry(2, 2), SF.AxisGeometry(5), SF.AxisGeometry(2, 2)]
    field = SF.receptive_field(layers)
    assert field.size == 5 + 1 + 4 * 2 + 1 * 2 == 16
    assert field.stride == 4


@pytest.mark.parametrize(
    "context, expected",
    [([0], (1, 1)), ([-2, -1, 0, 1, 2], (5, 1)), ([-1, 2], (2, 3)), ([-3, 3], (2, 6)), ([-3, 0, 3], (3, 3))],
)
def test_tdnn_context_to_kernel(context, expected):
    assert SF.context_to_kernel(context) == expected


def test_tdnn_context_must_be_evenly_spaced():
    with pytest.raises(ValueError):
        SF.context_to_kernel([-2, 0, 1])
