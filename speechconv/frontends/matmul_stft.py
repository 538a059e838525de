"""The STFT as framing plus two float32 matmuls: the front-end's export path.

``torch.stft`` (complex) does not export to ONNX opset graphs. :class:`MatmulMelPower` frames the
samples from hop-sized blocks (:meth:`MatmulMelPower.frames`), applies the window and a real DFT as two
float32 matmuls on the folded frame (:func:`folded_dft_bases`), then the mel filterbank, in float32 (the
default path sums in float64): its mel power equals the default's to float32 rounding (tests bound the
scores). Nothing in it depends on the number of samples, so a traced graph runs any chunk length.
A front-end uses it after :meth:`SpectrogramFrontend.use_matmul_stft` (export does this on its copy).
"""

from __future__ import annotations

import torch


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


class MatmulMelPower(torch.nn.Module):
    """``samples (B, L) -> (mel power (B, n_mels, T), leftover samples (B, L - T * hop))`` of a front-end."""

    def __init__(self, frontend):
        super().__init__()
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
        """Mel power ``(B, n_mels, T)`` of exactly ``(T - 1) * hop + n_fft`` samples."""
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

    def forward(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_frames = (samples.shape[-1] - self.n_fft) // self.hop + 1  # traced: no branch on the length
        if not torch.jit.is_tracing():
            n_frames = max(n_frames, 0)
        mel = self.mel_power(samples[:, : (n_frames - 1) * self.hop + self.n_fft])
        return mel, samples[:, n_frames * self.hop:]
