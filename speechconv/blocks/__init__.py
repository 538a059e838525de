"""Shared conv-pool block library. Pure math lives in :mod:`speechconv.blocks.functional`;
the modules here use it."""

from speechconv.blocks import functional
from speechconv.blocks.conv import ACTIVATIONS, ConvPool1d, ConvPool2d, make_activation
from speechconv.blocks.dense import Dense
from speechconv.blocks.fft import direct_conv, fft_conv
from speechconv.blocks.pooling import LearnedPool, max_pool_with_argmax
from speechconv.blocks.residual import Parallel, Residual
from speechconv.blocks.streaming import Cache, StreamingModule, StreamingSequential, take_windows

__all__ = [
    "ACTIVATIONS", "Cache", "ConvPool1d", "ConvPool2d", "Dense", "LearnedPool", "Parallel", "Residual",
    "StreamingModule", "StreamingSequential", "direct_conv", "fft_conv", "functional", "make_activation",
    "max_pool_with_argmax", "take_windows",
]
