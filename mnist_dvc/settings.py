"""Reading a settings file (params.yaml, sources.yaml): YAML within the bounds of
mnist_dvc/documents.py (nesting, aliases counted before they are expanded), validated by a
pydantic schema, every problem one line that names the file and the dotted key.

Values that YAML 1.1 reads differently from what they look like (`1e-3` is text, `on` is true,
`0x10` is 16) are refused with a line that says what YAML did and how to write the value, and
a refusal quotes at most a bounded prefix of any value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mnist_dvc import documents
from mnist_dvc.errors import StageError
from mnist_dvc.files import read_text_limited
from mnist_dvc.quoting import MAX_QUOTED, quote, shorten


class ParamsError(StageError):
    """A settings file is missing, unreadable or holds a value that is not allowed."""


class Section(BaseModel):
    # strict: "12" is not 12 and 12.0 is not 12; forbid: a typo is an error, not a default;
    # no NaN or infinity (`.inf`, or `1.0e+400`, which YAML reads as one) in any number.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


Schema = TypeVar("Schema", bound=BaseModel)


def load_settings(path: Path, schema: type[Schema]) -> Schema:
    """`path` read and validated by `schema`; ParamsError with one line on any problem."""
    try:
        text = read_text_limited(path)
        node = documents.compose_yaml(text)
        misread = next(_misread_scalars(node), None)
        raw = documents.construct_yaml(node)
    except OSError as error:  # missing, unreadable, not a regular file, too large
        raise ParamsError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text") from None
    except documents.DocumentError as error:  # not YAML, nested or aliased past the limits
        raise ParamsError(f"{path}: {error}") from None
    if misread:
        raise ParamsError(f"{path}: {misread}")
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(f"{path}: {_describe(error)}") from None


# Plain (unquoted) YAML 1.1 scalars whose meaning differs from how they look to a reader of
# YAML 1.2 (DVC's own reading of params.yaml) or of Python.
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT_12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _misread_scalars(node: yaml.Node | None, key: str = "") -> Iterator[str]:
    """Messages for the plain scalars whose YAML 1.1 meaning differs from how they look (the
    node graph has been measured: documents.compose_yaml bounds its size and depth)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            yield from _misread_scalars(value, f"{key}{shorten(str(key_node.value))}.")
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            yield from _misread_scalars(value, f"{key}{index}.")
    elif isinstance(node, yaml.ScalarNode) and node.style is None:
        text, kind, where = node.value, node.tag.rpartition(":")[2], shorten(key.rstrip("."))
        if len(text) > MAX_QUOTED and kind in ("bool", "int", "float"):
            # Not shown whole, nor converted: a hex number of a million digits has no decimal form.
            yield f"{where}: {shorten(text)}: a number of {len(text):,} characters"
        elif kind == "bool" and text.lower() not in ("true", "false"):
            meaning = str(yaml.safe_load(text)).lower()
            yield (
                f"{where}: YAML reads {text} as the boolean {meaning}; write {meaning} for a "
                f"boolean, or '{text}' in quotes for the word"
            )
        elif (kind == "int" and not _PLAIN_INT.fullmatch(text)) or (
            kind == "float" and ("_" in text or ":" in text)
        ):
            number = yaml.safe_load(text)
            yield f"{where}: YAML 1.1 reads {text} as the number {number}; write {number}"
        elif kind == "str" and len(text) <= MAX_QUOTED and _FLOAT_12.fullmatch(text):
            yield (
                f"{where}: YAML 1.1 reads {text} as the text '{text}', not a number; write "
                f"{_with_dot(text)} (a number with an exponent needs a dot and a signed exponent)"
            )


def _with_dot(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}" if exponent else mantissa


def _describe(error: ValidationError) -> str:
    """The first problem pydantic found, as `dotted.key: what is wrong (got X)`."""
    first = error.errors(include_url=False)[0]
    key = shorten(".".join(str(part) for part in first["loc"]) or "(top level)")
    kind = first["type"]
    if kind == "missing":
        return f"{key}: missing (every setting must be given; see the committed file)"
    if kind == "extra_forbidden":
        return f"{key}: unknown key (a typo? mnist_dvc/params.py lists the allowed keys)"
    extra = f"; {len(error.errors()) - 1} more problem(s)" if len(error.errors()) > 1 else ""
    if kind == "value_error":
        return f"{key}: {first['msg'].removeprefix('Value error, ')}{extra}"
    got = first.get("input")
    return f"{key}: {first['msg'][0].lower()}{first['msg'][1:]} (got {quote(got)}){extra}"
