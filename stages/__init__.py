"""The stages of the MNIST DVC pipeline: fetch, preprocess, train, evaluate."""
