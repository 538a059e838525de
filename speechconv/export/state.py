"""Streaming state of an exported step: flat ordered names, shapes, initial values and metadata.

An exported step (ONNX or TorchScript) takes ``chunk`` and the state tensors as positional inputs and
returns ``posteriors`` and the new state tensors, in the order of :attr:`StepSpec.state_names`
(inputs ``state_in.<name>``, outputs ``state_out.<name>``). A fixed-shape step cannot start from an
empty cache; it starts, as every speechconv stream does, from :meth:`KeywordSpotter.initial_state`: the
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
def folded_dft_bases(n_fft: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Real DFT of a frame ``y`` from its folded halves, at half the work of the full bases.

    ``cos(2 pi k n / N)`` is even and ``sin`` odd around ``N/2``, so with ``m = (N - 1) // 2`` pairs,
    ``even = [y0, y[1..m] + y[N-1..N-m], (y[N/2] if N is even)]`` and ``odd = y[1..m] - y[N-1..N-m]``:
    ``Re X = even @ cos_basis`` and ``-Im X = odd @ sin_basis``. Returns ``(cos_basis, sin_basis, m)``,
    float32, ``(m + 1 (+1), N//2 + 1)`` and ``(m, N//2 + 1)``.
    """
    m = (n_fft - 1) // 2
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    even_n = torch.arange(m + 1, dtype=torch.float64)
    if n_fft % 2 == 0:
        even_n = torch.cat([even_n, torch.tensor([n_fft / 2], dtype=torch.float64)])
    odd_n = torch.arange(1, m + 1, dtype=torch.float64)
    cos_basis = torch.cos(2 * torch.pi * torch.outer(even_n, k) / n_fft)
    sin_basis = torch.sin(2 * torch.pi * torch.outer(odd_n, k) / n_fft)
    return cos_basis.to(torch.float32), sin_basis.to(torch.float32), m


def padded_window(frontend) -> torch.Tensor:
    """The analysis window zero-padded to ``n_fft`` in the middle, as ``torch.stft`` does."""
    window = frontend.spectrogram.window.detach().to(torch.float64)
    left = (frontend.n_fft - window.shape[0]) // 2
    return torch.nn.functional.pad(window, (left, frontend.n_fft - window.shape[0] - left))


class StreamingStep(torch.nn.Module):
    """``(chunk (B, chunk_samples), *state) -> (posteriors (B, C, n), *new_state)`` of a spotter.

    The front-end's STFT is framing (:meth:`frames`), the window and a real DFT as two float32 matmuls on
    the folded frame (:func:`folded_dft_bases`; the complex STFT does not export to ONNX opset graphs),
    then the mel filterbank, in float32 (the front-end sums in float64): the features equal the
    front-end's to float32 rounding (tests bound the scores).
    The rest is the spotter's own code. The graph holds no constant that depends on the chunk length,
    so a step exported with a dynamic chunk axis runs any multiple of the output period.
    """

    def __init__(self, spotter, state_names: list[str], constant_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        frontend = spotter.frontend
        self.spotter = spotter
        self.state_names = list(state_names)
        # entries that never change in the steady state (zero-size tails, skip counters of strided
        # 1x1 shortcuts) are constants of the graph, not inputs
        self.constant_state = dict(constant_state or {})
        self.n_fft = int(frontend.n_fft)
        self.hop = int(frontend.hop_length)
        cos_basis, sin_basis, self.pairs = folded_dft_bases(self.n_fft)
        window = padded_window(frontend)
        # a window symmetric about n_fft / 2 (periodic Hann, Hamming, ...) is the same on both folded halves,
        # so it goes into the bases and costs nothing per frame
        self.symmetric_window = bool(torch.allclose(window[1:], window[1:].flip(0), rtol=0.0, atol=1e-7))
        if self.symmetric_window:
            m = self.pairs
            even_n = list(range(m + 1)) + ([self.n_fft // 2] if self.n_fft % 2 == 0 else [])
            cos_basis = cos_basis * window[even_n].to(torch.float32)[:, None]
            sin_basis = sin_basis * window[1:m + 1].to(torch.float32)[:, None]
        self.register_buffer("window", window.to(torch.float32), persistent=False)
        self.register_buffer("cos_basis", cos_basis, persistent=False)
        self.register_buffer("sin_basis", sin_basis, persistent=False)
        self.register_buffer("mel_fb", frontend.mel_scale.fb.detach().to(torch.float32).contiguous(),
                             persistent=False)  # (F, n_mels)

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_fft)`` frames of ``samples`` ``(B, (T - 1) * hop + n_fft)``, from hop-sized blocks: a frame
        is ``q`` whole blocks and ``r`` samples of the next (``n_fft = q * hop + r``), so framing is copies
        of slices, with no index array (a gather of T x n_fft indices costs more than the DFT)."""
        q, r = divmod(self.n_fft, self.hop)
        n_frames = (samples.shape[-1] - self.n_fft) // self.hop + 1
        padded = torch.nn.functional.pad(samples, (0, self.hop))  # the last frame's blocks all exist
        blocks = padded[:, : (n_frames + q) * self.hop].reshape(samples.shape[0], -1, self.hop)
        parts = [blocks[:, j:j + n_frames] for j in range(q)] + ([blocks[:, q:q + n_frames, :r]] if r else [])
        return torch.cat(parts, dim=-1)

    def mel_power(self, samples: torch.Tensor) -> torch.Tensor:
        n, m = self.n_fft, self.pairs
        frames = self.frames(samples)  # (B, T, N)
        if not self.symmetric_window:
            frames = frames * self.window
        low, high = frames[..., 1:m + 1], torch.flip(frames[..., n - m:], dims=[-1])
        even = [frames[..., :1], low + high] + ([frames[..., n // 2:n // 2 + 1]] if n % 2 == 0 else [])
        real = torch.cat(even, dim=-1) @ self.cos_basis
        imag = (low - high) @ self.sin_basis
        power = real * real + imag * imag  # (B, T, F)
        return (power @ self.mel_fb).transpose(1, 2)  # (B, n_mels, T)

    def forward(self, chunk: torch.Tensor, *state: torch.Tensor):
        cache = unflatten_state(list(state), self.state_names)
        cache.update(self.constant_state)
        frontend = self.spotter.frontend
        fe_state = {k[len("frontend."):]: v for k, v in cache.items() if k.startswith("frontend.")}
        model_cache = {k[len("model."):]: v for k, v in cache.items() if k.startswith("model.")}
        buf = torch.cat([fe_state.pop("samples"), chunk], dim=-1)
        n_frames = (buf.shape[-1] - self.n_fft) // self.hop + 1
        mel = self.mel_power(buf[:, : (n_frames - 1) * self.hop + self.n_fft])
        features, fe_state = frontend.features_from_mel(mel, fe_state)
        features = frontend.normalizer(features)
        fe_state = {**fe_state, "samples": buf[:, n_frames * self.hop:]}
        logits, model_cache = self.spotter.model(features, model_cache)
        new_state = {f"frontend.{k}": v for k, v in fe_state.items()}
        new_state.update({f"model.{k}": v for k, v in model_cache.items()})
        for name in self.constant_state:
            new_state.pop(name, None)
        return (torch.softmax(logits, dim=1), *flatten_state(new_state, self.state_names))


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
        _, probe = spotter.forward_streaming(torch.zeros(1, chunk_samples), probe)
        changed = [n for n, v in skips.items() if not torch.equal(probe[n], v)]
        if changed:
            raise ConfigError(
                f"the skip counters {changed} change from step to step with chunks of {chunk_samples} samples; "
                f"use a multiple of the model's total stride"
            )
    return {**constant, **skips}


def initial_state_json(state: dict[str, torch.Tensor]) -> str:
    return encode_arrays({k: v.detach().cpu().numpy() for k, v in state.items()})
