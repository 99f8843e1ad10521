"""Text adapter: hyperfitting causal language models on the shared core."""
