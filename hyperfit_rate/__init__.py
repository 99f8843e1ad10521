"""Blind pairwise human rating of text continuations and image completions (`hyperfit rate ...`).

The paper's headline number is human preference: how often raters judge a condition's continuation as good as
or better than the original text. This package builds a blinded study from completion/generation run dirs,
serves it as a small local web app (Flask), stores one SQLite row per vote and computes the statistics.
It reads the run dirs' files directly (safetensors / jsonl), so it imports no model code.
"""
