"""What the API looks like, for /openapi.json: answers are written without these models (a JSON
codec does it faster than pydantic would validate them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mnist_dvc.serving.bodies import MAX_INSTANCES


class PredictRequest(BaseModel):
    instances: list[list[list[float]]] = Field(
        description="28x28 arrays of numbers in [0, 1] (28x28x1 ones too), "
        f"at most {MAX_INSTANCES}",
        min_length=1,
        max_length=MAX_INSTANCES,
    )


class Prediction(BaseModel):
    digit: int
    probability: float
    probabilities: list[float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    detail: str


_UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}
_PREDICT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
        },
    }
}
_FEEDBACK_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "label": {"type": "string", "pattern": "^[0-9]$"},
                    },
                    "required": ["file", "label"],
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why}
    for status, why in {
        400: "an empty body, a body that is not JSON, a form without field `file`",
        413: "a body over the size limit",
        415: "neither JSON nor multipart/form-data",
        422: "not an image, a decompression bomb, wrong shape, values outside [0, 1], NaN, "
        "too many instances",
        503: "the model did not answer in time",
    }.items()
}
_FEEDBACK_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "feedback is off (no --feedback-dir)"},
    409: {"model": ErrorBody, "description": "the drawing is kept already, with another label"},
    422: {
        "model": ErrorBody,
        "description": "not an image, an image with no ink, a label that "
        "is not a digit from 0 to 9",
    },
    507: {"model": ErrorBody, "description": "the feedback folder holds its most samples"},
}
