import click


@click.group()
def text():
    """Hyperfit causal LMs and measure their continuations."""
