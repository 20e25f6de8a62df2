"""The pipeline's stages, one module each with a `main()`, run by dvc.yaml as
`python -m stages <name>` (stages/__main__.py). Importing one runs nothing."""
