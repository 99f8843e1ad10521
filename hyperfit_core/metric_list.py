"""The built-in metrics and record fields (plain data; hyperfit_core.metric_registry registers them on import).

Compute functions take a hyperfit_core.scoring.Sample and the parameters named in `settings`; the text and image
scoring entries (hyperfit_text.scoring.score_text, hyperfit_vision.scoring.score_images) run every metric of
their modality whose needs the sample meets. Metrics with `made_by` instead come from a model pass or a vote
count elsewhere and are registered for their names, labels and directions.
"""

from hyperfit_core.metric_spec import (ANY, CLOSER, FEATURES, HIGHER, IMAGE, IMAGES, LOWER, MODEL, NONE, RATINGS,
                                       REFERENCE, TEXT, TEXTS, TOKENS, TRAIN, Metric)

CORE, TEXT_HOOKS, IMAGE_HOOKS = "hyperfit_core.scoring", "hyperfit_text.scoring", "hyperfit_vision.repetition"
QUALITY_HOOKS = "hyperfit_text.quality"
OVERLAP = dict(direction=LOWER, modality=ANY, needs=(TOKENS, TRAIN), compute=f"{CORE}:overlap",
               settings=(("threshold", "overlap_threshold"),))
ANALYSIS = dict(modality=ANY, needs=(MODEL, REFERENCE), made_by="hyperfit_core.analysis.summarize (text: under "
                "'analysis'), on the held-out references")
FID = dict(modality=IMAGE, needs=(IMAGES, REFERENCE, FEATURES), made_by="hyperfit_vision.scoring.ImageFid")
# MAUVE and fluency under an independent scoring model (hyperfit_text/quality.py), computed when one is named
SCORER = (("model", "quality_model"), ("device", "device"), ("cache", "quality_cache"))
MAUVE = dict(modality=TEXT, needs=(TEXTS, REFERENCE, FEATURES), compute=f"{QUALITY_HOOKS}:mauve_metric",
             settings=SCORER + (("clusters", "mauve_clusters"),), enabled_by="quality_model")
FLUENCY = dict(modality=TEXT, needs=(TEXTS, FEATURES), compute=f"{QUALITY_HOOKS}:fluency_metric",
               settings=SCORER, enabled_by="quality_model")
VOTES = dict(modality=ANY, needs=(RATINGS,), made_by="hyperfit_rate.results.analyse")

METRICS = [
    # diversity and repetition of token ids (text tokens, image palette ids of the generated region)
    Metric("type_token_ratio", "TTR", "distinct tokens / tokens of each generation (text: its last `--ttr-last` "
           "tokens; images: the generated region), mean over generations", CLOSER, ANY, (TOKENS,), per_item=True,
           compute=f"{CORE}:type_token_ratio", settings=(("last", "ttr_last"),),
           aliases=("ttr_tokens_last{last}", "ttr")),
    Metric("seq_rep_{n}", "seq-rep-{n}", "1 - distinct n-grams / n-grams of each generation (Welleck et al. 2020), "
           "mean over generations", CLOSER, ANY, (TOKENS,), per_item=True, compute=f"{CORE}:seq_rep",
           settings=(("n", "rep_n"),)),
    Metric("self_bleu{order}", "Self-BLEU-{order}", "BLEU (nltk method1) of each generation with all the others as "
           "its references, mean over generations (Zhu et al. 2018; higher: the generations resemble each other)",
           CLOSER, TEXT, (TOKENS,), per_item=True, compute=f"{CORE}:self_bleu", settings=(("order", "bleu_order"),)),
    Metric("dataset_bleu{order}", "Dataset BLEU-{order}", "highest BLEU of each generation against any single "
           "hyperfitting sequence, mean over generations: how close it comes to copying one", LOWER, TEXT,
           (TOKENS, TRAIN), per_item=True, compute=f"{CORE}:dataset_bleu", settings=(("order", "bleu_order"),)),
    Metric("word_type_token_ratio", "word TTR", "distinct / total whitespace-separated words of each decoded "
           "generation's last `--ttr-last` words (generations without words left out), mean", CLOSER, TEXT, (TEXTS,),
           per_item=True, compute=f"{TEXT_HOOKS}:word_type_token_ratio", settings=(("last", "ttr_last"),),
           aliases=("ttr_words_last{last}", "ttr_words")),
    # copying: the longest token span a generation shares with the hyperfitting data
    Metric("overlap_mean_span", "train overlap", "longest token span each generation shares with any hyperfitting "
           "sequence, mean over generations", per_item=True, digits=1, aliases=("mean_span", "overlap/mean_span"),
           **OVERLAP),
    Metric("overlap_max_span", "max train overlap", "the longest such span of any generation", digits=0,
           aliases=("max_span", "overlap/max_span"), **OVERLAP),
    Metric("overlap_frac_above_threshold", "share overlapping > threshold", "share of generations whose longest "
           "shared span is longer than the threshold (10 tokens)",
           aliases=("frac_above_threshold", "overlap/frac_above_threshold"), **OVERLAP),
    # pixels of the generated region (each image weighs the same)
    Metric("row_repetition", "row rep.", "share of generated rows whose mean |pixel - pixel above| is at most 4 "
           "levels of 255, mean over images", CLOSER, IMAGE, (IMAGES,), per_item=True,
           compute=f"{IMAGE_HOOKS}:row_repetition_hook", settings=(("tolerance", "row_tolerance"),)),
    Metric("patch_duplication", "patch dup.", "share of the 4 x 4 patches (stride 1) of the generated region equal "
           "to another patch of it, mean over images", CLOSER, IMAGE, (IMAGES,), per_item=True,
           compute=f"{IMAGE_HOOKS}:patch_duplication_hook", settings=(("patch_size", "patch_size"),)),
    Metric("compressed_bytes_per_pixel", "zlib bytes/pixel", "zlib (level 9) size of the generated region's RGB "
           "bytes per pixel, mean over images", CLOSER, IMAGE, (IMAGES,), per_item=True,
           compute=f"{IMAGE_HOOKS}:compressed_bytes_hook"),
    Metric("compression_ratio_vs_real", "zlib vs real", "zlib size of each generated region / that of the real "
           "image it replaces, mean over images (< 1: more compressible, more repetitive)", CLOSER, IMAGE,
           (IMAGES, REFERENCE), per_item=True, compute=f"{IMAGE_HOOKS}:compression_ratio_hook"),
    # quality and diversity against the real images, through a feature model
    Metric("fid", "FID", "Frechet distance between the Inception pool3 features of the generated and of the real "
           "images (torchmetrics; biased upward below 2048 images)", LOWER, digits=2, **FID),
    Metric("kid_mean", "KID", "kernel (cubic polynomial) MMD between the same features, mean over subsets",
           LOWER, **FID),
    Metric("kid_std", "KID sd", "standard deviation of KID over its subsets", NONE, **FID),
    # quality against the human continuations, under a scoring model that did not generate the text
    Metric("mauve", "MAUVE", "MAUVE (Pillutla et al. 2021; mauve-text) of the continuations against the human "
           "continuations of the same prompts, on the scoring model's mean-pooled last hidden states (biased upward "
           "and noisy below a few thousand texts: compare at equal texts and clusters)", HIGHER, **MAUVE),
    Metric("mauve_frontier_integral", "MAUVE FI", "frontier integral of the same divergence frontier (0: the "
           "cluster histograms match)", LOWER, **MAUVE),
    Metric("fluency_perplexity", "fluency PPL", "perplexity of each continuation given its context under the "
           "scoring model, mean over continuations (repetition scores far below human text: read beside MAUVE and "
           "TTR)", CLOSER, per_item=True, digits=2, **FLUENCY),
    Metric("fluency_perplexity_median", "median fluency PPL", "median of the same perplexities", CLOSER, digits=2,
           **FLUENCY),
    # the model's predictions on held-out references (the sharpened-prediction analysis)
    Metric("perplexity", "held-out PPL", "exp(mean cross-entropy) of the held-out reference tokens", LOWER,
           digits=2, **ANALYSIS),
    Metric("cross_entropy_mean", "held-out loss", "mean cross-entropy (nats) of the held-out reference tokens",
           LOWER, **ANALYSIS),
    Metric("entropy_mean", "entropy (nats)", "mean entropy of the next-token distribution on the held-out "
           "references", NONE, aliases=("entropy",), **ANALYSIS),
    Metric("entropy_median", "median entropy (nats)", "median of the same entropies", NONE, **ANALYSIS),
    Metric("top1_accuracy", "top-1 acc", "share of held-out positions whose most likely token is the reference's",
           HIGHER, **ANALYSIS),
    Metric("top{k}_prob_mean", "top-{k} prob", "mean total probability of the k most likely tokens", NONE,
           **ANALYSIS),
    # human preference (hyperfit rate results)
    Metric("win_or_tie", "win-or-tie", "share of a version's votes against the original judging it as good or "
           "better (Wilson 95% interval)", HIGHER, **VOTES),
    Metric("bt_strength", "BT vs original", "Bradley-Terry log-strength relative to the original (0: as good; "
           "95% bootstrap interval); under bradley_terry/<version>/strength", HIGHER, **VOTES),
    Metric("krippendorff_alpha", "Krippendorff's alpha", "agreement (nominal a / b / tie) on pairs several raters "
           "rated", HIGHER, **VOTES),
    Metric("fleiss_kappa", "Fleiss' kappa", "the same agreement when every such pair has as many ratings",
           HIGHER, **VOTES),
]

# keys that describe a record (what was scored, how many) rather than measure it
FIELDS = {
    "count": "generations (images) scored", "new_tokens": "generated tokens per continuation",
    "texts_with_words": "decoded generations with at least one word (word TTR's count)",
    "images": "held-out images per condition", "overlap_threshold": "span length of overlap_frac_above_threshold",
    "n_real": "real images behind FID/KID", "n_fake": "generated images behind FID/KID",
    "kid_subset_size": "images per KID subset", "kid_subsets": "KID subsets drawn",
    "file": "the scored generations file", "model": "the model that generated", "gguf_file": "its GGUF file",
    "decoding": "how it decoded", "blocker_stats": "the citation blocker's firing counts",
    "length_curve": "{L: metrics of the first L generated tokens}", "analysis": "the prediction metrics",
    "repetition": "{metric: {generated, real}} of the image metrics", "positions": "held-out positions analysed",
    "num_classes": "vocabulary size",
    "mauve_texts": "continuations behind MAUVE", "mauve_human_texts": "human continuations behind MAUVE",
    "mauve_clusters": "k-means clusters of MAUVE", "mauve_seed": "MAUVE's k-means seed",
    "mauve_feature_dim": "width of MAUVE's features", "fluency_texts": "continuations behind fluency",
    "fluency_tokens": "scoring-model tokens behind fluency", "entropy_hist": "histogram of the entropies",
}
