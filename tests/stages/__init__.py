"""Each stage as DVC runs it (stages/<name>.py): a fresh process, real MNIST, bad input."""
