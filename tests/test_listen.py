"""``speechconv listen`` with a fake input stream: the same events as detection over the whole file."""

from __future__ import annotations

import sys

import pytest
import torch

from speechconv.cli import listen as listen_cli
from speechconv.cli.main import main
from speechconv.detect import Detector, make_detector
from speechconv.detect.detector import runs_above
from speechconv.errors import SpeechconvError
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.pretrained import save_pretrained
from speechconv.streaming import KeywordSpotter


@pytest.fixture(scope="module")
def spotter_and_wave():
    torch.manual_seed(0)
    spotter = KeywordSpotter(build_frontend({"name": "logmel", "n_mels": 40}),
                             build_model({"name": "tdnn", "num_classes": 2}), ["_unknown_", "hello"],
                             {"smoothing_frames": 2, "merge_seconds": 0.03, "refractory_seconds": 0.05}).eval()
    wave = 0.1 * torch.randn(24000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        scores = spotter(wave[None])[0, 1]
    spotter.detector["threshold"] = float(scores.median())
    return spotter, wave


def blocks_of(wave: torch.Tensor, size: int):
    for i in range(0, len(wave), size):
        yield wave[i:i + size].numpy()  # like sounddevice: numpy float32 blocks


def test_listen_stream_reports_the_offline_events(spotter_and_wave):
    spotter, wave = spotter_and_wave
    with torch.no_grad():
        scores = spotter(wave[None])[0, 1].numpy()
    expected = make_detector(spotter).detect(spotter.output_times(0, len(scores)), scores)
    assert len(expected) >= 2
    seen = []
    assert listen_cli.listen_stream(spotter, blocks_of(wave, 1600), make_detector(spotter), seen.append) == len(seen)
    assert [(e.start, e.end, e.peak) for e in seen] == [(e.start, e.end, e.peak) for e in expected]
    assert [e.score for e in seen] == pytest.approx([e.score for e in expected], abs=1e-5)


def test_events_are_printed_as_soon_as_they_are_final(spotter_and_wave):
    spotter, wave = spotter_and_wave
    detector: Detector = make_detector(spotter)
    fed = []

    def stream():
        for i, block in enumerate(blocks_of(wave, 800)):
            fed.append(i)
            yield block

    arrival = []
    listen_cli.listen_stream(spotter, stream(), detector, lambda e: arrival.append((len(fed), e)))
    last_block = (len(wave) + 799) // 800
    early = [(n, e) for n, e in arrival if n < last_block]
    assert early, "detections should be reported while the stream is still running"
    # output time t is known once the samples up to t + lookahead have arrived; an event is final
    # one merge window after its end, so it is out within one block of that
    # (the event's run above threshold: event.start/end bracket the spoken word, before the peak)
    lookahead = spotter.model.lookahead * spotter.frontend.hop_length / 16000
    with torch.no_grad():
        scores = spotter(wave[None])[0, 1].numpy()
    times = spotter.output_times(0, len(scores))
    run_starts, run_ends = runs_above(detector.smooth(scores) >= detector.threshold)
    for n, event in early:
        # the event's (merged) run ends at the last run end before a gap of at least merge_seconds
        i = next(k for k in range(len(run_ends)) if times[run_ends[k]] >= event.peak - 1e-9)
        while i + 1 < len(run_starts) and times[run_starts[i + 1]] - times[run_ends[i]] < detector.merge_seconds - 1e-9:
            i += 1
        run_end = float(times[run_ends[i]])
        assert n * 800 / 16000 <= run_end + detector.merge_seconds + lookahead + 800 / 16000 + 1e-6


def test_listen_command_with_a_fake_microphone(spotter_and_wave, tmp_path, monkeypatch, capsys):
    spotter, wave = spotter_and_wave
    save_pretrained(spotter, tmp_path / "model")
    opened = {}

    def fake_input(sample_rate, block_seconds, device):
        opened.update(sample_rate=sample_rate, block_seconds=block_seconds, device=device)
        return blocks_of(wave, int(sample_rate * block_seconds))

    monkeypatch.setattr(listen_cli, "open_input", fake_input)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["listen", "--model", str(tmp_path / "model"), "--device", "3", "--block-seconds", "0.05"]) == 0
    assert opened == {"sample_rate": 16000, "block_seconds": 0.05, "device": 3}
    out = capsys.readouterr()
    with torch.no_grad():
        scores = spotter(wave[None])[0, 1].numpy()
    expected = make_detector(spotter).detect(spotter.output_times(0, len(scores)), scores)
    assert out.out.splitlines() == [listen_cli.format_live(e, "hello") for e in expected]
    assert "listening for 'hello'" in out.err


def test_missing_sounddevice_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now raises ImportError
    with pytest.raises(SpeechconvError, match=r"pip install speechconv\[listen\]"):
        next(listen_cli.microphone_blocks(16000, 0.1))
