"""Shared conv-pool block library. Pure math lives in :mod:`speechconv.blocks.functional`;
the modules here use it."""

from speechconv.blocks import functional
from speechconv.blocks.conv import ACTIVATIONS, ConvPool1d, ConvPool2d, make_activation
from speechconv.blocks.dense import Dense
from speechconv.blocks.fft import direct_conv, fft_conv
from speechconv.blocks.pooling import LearnedPool
from speechconv.blocks.residual import Parallel, Residual
from speechconv.blocks.streaming import State, StreamingModule, StreamingSequential, take_windows

__all__ = [
    "ACTIVATIONS", "State", "ConvPool1d", "ConvPool2d", "Dense", "LearnedPool", "Parallel", "Residual",
    "StreamingModule", "StreamingSequential", "direct_conv", "fft_conv", "functional", "make_activation",
    "take_windows",
]
