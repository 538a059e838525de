"""The model card of a ``speechconv train-keyword`` model: what it was trained on and what was measured."""

from __future__ import annotations

from speechconv.training.keyword_recipe.pipeline import EVAL_SNR_DB, MIN_BLIND_THRESHOLD, Options


def model_card(spotter, results: dict, prepare: dict, synth: dict, options: Options) -> str:
    """The model card of a train-keyword model: what it was trained on and what was measured."""
    model = spotter.model
    chosen = results["chosen"]
    frame_rate = spotter.sample_rate / spotter.frontend.hop_length
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

## Data
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
These numbers come from **synthetic voices**. Detectors trained from TTS alone find far fewer keywords
spoken by real people: see `recipes/wakeword_benchmark` in the speechconv repository, which measures
this recipe on real recordings of four other wake words. Check the model on recordings of your own users
before you rely on it, and raise or lower the threshold with `speechconv detect --threshold`.
"""
