"""mnist-serve: the trained model behind a page to draw a digit on and a JSON API in TensorFlow
Serving's REST form. It uses the pipeline's outputs and is no part of the pipeline: no stage
imports this package (tests/test_layout.py checks the direction).

    cli.py        the console script: options, start-up, the one-line refusals
    engines.py    the model as a function of images: ENGINES, one row per engine (ONNX
                  Runtime, the default, or Keras) with its files and loader
    card.py       GET /model: which files are served, and what dvc.lock says of them
    body_limit.py the request body's size limit (middleware: 413 before it is read)
    bodies.py     request bodies: JSON instances, uploads, answers
    schemas.py    what the API looks like, for /openapi.json
    app.py        the routes
    hosts.py      the Host names the server answers (no DNS rebinding)
    protocol.py   uvicorn's HTTP protocol with deadlines for a request's head and body
    fetched.py    a registered version, downloaded once into a cache folder (--rev, --stage)
    batching.py   requests batched into one model call, off the event loop
    background.py mnist-serve in a child process for a `with` block (benchmarks, tests)
    static/       the drawing page
"""
