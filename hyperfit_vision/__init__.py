"""Vision adapter: hyperfitting ImageGPT and completing images from a prefix."""
