"""Streaming state of an exported step: flat ordered names, shapes, initial values and metadata.

An exported step (ONNX or TorchScript) takes ``chunk`` and the state tensors as positional inputs and
returns ``posteriors`` and the new state tensors, in the order of :attr:`StepSpec.state_names`
(inputs ``state_in.<name>``, outputs ``state_out.<name>``). A fixed-shape step cannot start from an
empty state; it starts, as every speechconv stream does, from :meth:`KeywordSpotter.initial_state`: the
state of a stream that heard ``warmup_samples`` of digital silence. Times are given relative to the
audio that follows (see :meth:`StepSpec.output_times`). The outputs are those of a :class:`StreamingEngine` run on
the same audio from sample 0, except the last ones: a consumer keeps outputs with
``time + audio_end_lag <= duration`` (later ones need the zero padding of the last chunk).
``stream_start_time`` (kept for format version 1) equals ``first_output_time``.

Everything a consumer needs is one JSON document (:data:`METADATA_KEY`) plus the initial state,
stored as base64 little-endian bytes (:data:`INITIAL_STATE_KEY`), so no torch is needed to run it.
"""

from __future__ import annotations

import torch

from speechconv.errors import ConfigError
from speechconv.runtime.spec import (  # noqa: F401  (the format lives in runtime.spec; re-exported here)
    CHUNK_INPUT,
    FORMAT_VERSION,
    INITIAL_STATE_KEY,
    METADATA_KEY,
    POSTERIORS_OUTPUT,
    StepSpec,
    decode_arrays,
    encode_arrays,
    state_input_name,
    state_output_name,
)
from speechconv.streaming.timing import stream_times  # noqa: F401  (re-exported for consumers)


def frame_timing(spotter) -> dict[str, int]:
    """The integers of :meth:`KeywordSpotter.output_times`, so consumers compute bit-identical times."""
    return spotter.frame_timing


def flatten_state(state: dict[str, torch.Tensor], names: list[str]) -> list[torch.Tensor]:
    """The state tensors in the order of ``names`` (every name must be present, no others)."""
    missing = [n for n in names if n not in state]
    unexpected = sorted(set(state) - set(names))
    if missing or unexpected:
        raise ConfigError(f"state does not match the exported step: missing {missing}, unexpected {unexpected}")
    return [state[n] for n in names]


def unflatten_state(
    tensors: list[torch.Tensor] | tuple[torch.Tensor, ...], names: list[str]
) -> dict[str, torch.Tensor]:
    if len(tensors) != len(names):
        raise ConfigError(f"expected {len(names)} state tensors, got {len(tensors)}")
    return dict(zip(names, tensors))


# --------------------------------------------------------------------------------------------- the step
class _Scoped(torch.nn.Module):
    """Calls ``module.stream`` through ``__call__``, so the tracer names the nodes inside by this attribute
    (``/frontend/...``, ``/model/...``; quantization keeps the front-end in float by those names)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, state: dict[str, torch.Tensor] | None):
        return self.module.stream(x, state)


class StreamingStep(torch.nn.Module):
    """``(chunk (B, chunk_samples), *state) -> (posteriors (B, C, n), *new_state)``: the spotter's own
    streaming step (:func:`~speechconv.streaming.engine.stream_step`) with the state as positional tensors,
    on a copy whose front-end computes the STFT as matmuls (:meth:`SpectrogramFrontend.use_matmul_stft`;
    the complex STFT does not export to ONNX opset graphs). The graph holds no constant that depends on
    the chunk length, so a step exported with a dynamic chunk axis runs any multiple of the output period.
    """

    def __init__(self, spotter, state_names: list[str], constant_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.spotter = spotter
        self.frontend, self.model = _Scoped(spotter.frontend), _Scoped(spotter.model)
        self.state_names = list(state_names)
        # entries that never change in the steady state (zero-size tails, skip counters of strided
        # 1x1 shortcuts) are constants of the graph, not inputs
        self.constant_state = dict(constant_state or {})

    def forward(self, chunk: torch.Tensor, *tensors: torch.Tensor):
        state = unflatten_state(list(tensors), self.state_names)
        state.update(self.constant_state)
        from speechconv.streaming.engine import stream_step

        posteriors, new_state = stream_step(self.frontend, self.model, chunk, state)
        for name in self.constant_state:
            new_state.pop(name, None)
        return (posteriors, *flatten_state(new_state, self.state_names))


@torch.no_grad()
def prepare_step(spotter, chunk_samples: int | None = None) -> tuple[StreamingStep, StepSpec, dict[str, torch.Tensor]]:
    """Build the exportable step of ``spotter`` for chunks of ``chunk_samples`` (default: one output period).

    Returns the step module (on CPU, eval mode, a copy: the spotter is not changed), its description
    and the initial state. Raises :class:`ConfigError` when the spotter cannot be exported as a
    fixed-shape step.
    """
    import copy

    from speechconv.blocks.fuse import fold_batch_norm

    spotter = fold_batch_norm(copy.deepcopy(spotter).cpu().eval())  # an explicit inference step, on the copy
    if not spotter.streamable:
        raise ConfigError("this spotter cannot stream, so its streaming step cannot be exported")
    period = spotter.samples_per_output
    chunk_samples = period if chunk_samples is None else int(chunk_samples)
    if chunk_samples <= 0 or chunk_samples % period:
        raise ConfigError(
            f"chunk_samples must be a positive multiple of {period} (hop {spotter.frontend.hop_length} x model "
            f"frame stride {period // int(spotter.frontend.hop_length)}), got {chunk_samples}"
        )
    for module in spotter.modules():  # FFT convolutions give identical numbers through the direct path
        if getattr(module, "conv_impl", None) == "fft":
            module.conv_impl = "direct"
    state, warmup = spotter.init_state_with_warmup(1, chunk_samples)
    constant = steady_constants(spotter, state, chunk_samples)
    spotter.frontend.use_matmul_stft()
    state = {n: v for n, v in state.items() if n not in constant}
    names = sorted(state)
    bad = [n for n in names if not n.startswith(("frontend.", "model."))]
    if bad or "frontend.samples" not in names:
        raise ConfigError(f"unexpected spotter state entries {bad or names}")
    first_time = float(spotter.output_times(0, 1)[0])
    spec = StepSpec(
        chunk_samples=chunk_samples,
        sample_rate=spotter.sample_rate,
        labels=list(spotter.labels),
        keyword=spotter.keyword,
        keyword_index=spotter.keyword_index,
        frames_per_chunk=chunk_samples // period,
        output_frame_period=spotter.output_period,
        first_output_time=first_time,
        stream_start_time=first_time,
        audio_end_lag=int(getattr(spotter.model, "lookahead", 0)) * int(spotter.frontend.hop_length)
        / spotter.sample_rate,
        warmup_samples=int(warmup),
        lookahead=int(getattr(spotter.model, "lookahead", 0)),
        frame_timing=frame_timing(spotter),
        detector=dict(spotter.detector),
        state_names=names,
        state_shapes=[list(state[n].shape) for n in names],
        state_dtypes=[str(state[n].dtype).replace("torch.", "") for n in names],
    )
    return StreamingStep(spotter, names, constant).eval(), spec, state


def steady_constants(
    spotter, state: dict[str, torch.Tensor], chunk_samples: int, steps: int = 3
) -> dict[str, torch.Tensor]:
    """State entries that a fixed-shape step can keep as constants: zero-size ones and skip counters.

    A skip counter (a layer whose stride exceeds its window) is data-independent but could change
    from step to step; it must stay the same over ``steps`` further steps, else export is refused.
    """
    constant = {n: v for n, v in state.items() if v.numel() == 0}
    skips = {n: v for n, v in state.items() if n.endswith("_skip")}
    probe = dict(state)
    for _ in range(steps):
        _, probe = spotter.stream(torch.zeros(1, chunk_samples), probe)
        changed = [n for n, v in skips.items() if not torch.equal(probe[n], v)]
        if changed:
            raise ConfigError(
                f"the skip counters {changed} change from step to step with chunks of {chunk_samples} samples; "
                f"use a multiple of the model's total stride"
            )
    return {**constant, **skips}


def initial_state_json(state: dict[str, torch.Tensor]) -> str:
    return encode_arrays({k: v.detach().cpu().numpy() for k, v in state.items()})
