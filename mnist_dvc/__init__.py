"""mnist_dvc: the library behind the MNIST DVC pipeline.

The stages in `stages/` and the console scripts (`mnist-predict`) are thin entry points over
these modules. Nothing is imported here, so that importing one module costs only that module.
"""
