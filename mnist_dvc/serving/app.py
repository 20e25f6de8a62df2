"""The routes: the drawing page, the predict endpoints (ours and TensorFlow Serving's address),
/feedback, /model, /healthz and /openapi.json."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from mnist_dvc.serving.batching import Batcher
from mnist_dvc.serving.bodies import MAX_INSTANCES, ClientError, answer, read_images
from mnist_dvc.serving.body_limit import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    LimitBody,
    too_large_response,
)
from mnist_dvc.serving.card import MODEL_NAME
from mnist_dvc.serving.engines import Predictor
from mnist_dvc.serving.feedback import feedback_slots, served_model, take_feedback
from mnist_dvc.serving.hosts import ANY, TrustedHosts
from mnist_dvc.serving.schemas import (
    _ERRORS,
    _FEEDBACK_ERRORS,
    _FEEDBACK_OPENAPI,
    _PREDICT_OPENAPI,
    PredictResponse,
)
from mnist_dvc.spool import Spool

MAX_BATCH = 64  # images per model call when batching: where a bigger batch stopped paying
ANSWER_TIMEOUT_S = 60.0  # a request the model has not answered by then gets a 503


def page() -> str:
    page_file = resources.files("mnist_dvc.serving") / "static" / "index.html"
    return page_file.read_text(encoding="utf-8")


# The page inlines its script and style and loads nothing else; the browser is told so.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


def create_app(
    predictor: Predictor,
    card: dict[str, Any],
    *,
    batching: bool = True,
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
    answer_timeout_s: float = ANSWER_TIMEOUT_S,
    allowed_hosts: tuple[str, ...] = (ANY,),
    feedback: Spool | None = None,
) -> FastAPI:
    """The app; `allowed_hosts` are the Host names it answers (serving/hosts.py; mnist-serve
    chooses them from the address it listens on); `feedback`, the spool POST /feedback fills
    (serving/feedback.py; None: off)."""
    batcher = Batcher(predictor, max_batch=max_batch, batching=batching)
    html = page()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(
        title="MNIST digit classifier",
        version="1",
        description="The pipeline's trained model (models/model.json + model.h5).",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: /openapi.json only
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(LimitBody, max_bytes=max_body_bytes)
    app.add_middleware(TrustedHosts, allowed=allowed_hosts)  # the last added runs first

    @app.exception_handler(ClientError)
    async def client_error(_request: Request, error: ClientError) -> JSONResponse:
        return JSONResponse({"detail": error.message}, error.status)

    @app.exception_handler(TimeoutError)
    async def overloaded(_request: Request, _error: TimeoutError) -> JSONResponse:
        return JSONResponse({"detail": "the model did not answer in time: retry later"}, 503)

    @app.exception_handler(ClientDisconnect)
    async def gone(_request: Request, _error: ClientDisconnect) -> Response:
        # The client left, or its body was too late (mnist_dvc/serving/protocol.py): nobody
        # reads this answer, and the disconnection is no error of the server's to log.
        return Response(status_code=400)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, _error: BodyTooLarge) -> JSONResponse:
        return too_large_response(max_body_bytes)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        counters = {"model_calls": batcher.calls, "images": batcher.images}
        return {
            **card,
            "batching": {"enabled": batching, "max_batch": batcher.max_batch, **counters},
            "limits": {"max_body_bytes": max_body_bytes, "max_instances": MAX_INSTANCES},
            "feedback": feedback is not None,
        }

    model, slots = served_model(card), feedback_slots()

    @app.post(
        "/feedback",
        status_code=201,
        summary="Keep a drawing with its right digit (multipart: file, label) for the next "
        "drawings version; 404 unless mnist-serve runs with --feedback-dir",
        responses=_FEEDBACK_ERRORS,
        openapi_extra=_FEEDBACK_OPENAPI,
    )
    async def feedback_route(request: Request) -> JSONResponse:
        kept = await take_feedback(request, feedback, batcher, model, answer_timeout_s, slots)
        return JSONResponse(kept, 200 if kept["duplicate"] else 201)  # 201: a new sample

    async def predict(request: Request) -> Response:
        images = await read_images(request)
        probabilities = await batcher.predict(images, timeout_s=answer_timeout_s)
        return Response(answer(probabilities), media_type="application/json")

    for path in ("/predict", f"/v1/models/{MODEL_NAME}:predict"):
        app.add_api_route(
            path,
            predict,
            methods=["POST"],
            summary="Classify 28x28 instances (JSON) or one uploaded PNG/JPEG image",
            responses={200: {"model": PredictResponse}, **_ERRORS},
            openapi_extra=_PREDICT_OPENAPI,
        )
    return app
