"""Reading the JSON, YAML and CSV documents the project is handed (params.yaml, sources.yaml,
dvc.lock, dvc.yaml, release.yaml, metrics.json, provenance.json, predictions.csv), with the
work bounded by the document's size and declared limits, and every refusal one short line.

A small input must not buy a large cost. A YAML alias names a node without repeating it, so
1.4 KB of aliases can stand for 10^9 keys; a few KB of `[[[[...` nest deeper than Python's
recursion (and libyaml's composer, written in C, crashes with SIGSEGV a little deeper). So a
YAML document is composed by PyYAML's Python composer at most MAX_DEPTH levels deep, and then
measured without expanding anything: its nodes counted as if every alias were written out
(each distinct node once, memoized), and refused past MAX_NODES or MAX_DEPTH before a single
Python object is built. JSON has no aliases: its nesting is bounded the same way. Whatever is
refused is refused as a DocumentError (a ValueError) whose message says what, without the file's
name, which the caller adds; an input is quoted in a message by mnist_dvc/quoting.py, never
whole.

The sizes of the files themselves are bounded where they are read (mnist_dvc/files.py).
"""

from __future__ import annotations

import csv
import json
import math
import re
from typing import Any

import yaml

from mnist_dvc.quoting import MAX_QUOTED, quote

# Every document the project reads nests 5 levels deep at most (dvc.lock: stages, a stage, its
# outs, an out, its md5); 32 leaves room for anything a person would write.
MAX_DEPTH = 32
# Nodes as if every alias were written out: params.yaml has about 50, this dvc.lock about 900.
MAX_NODES = 100_000


class DocumentError(ValueError):
    """A document that cannot be read within the limits, or is not what it should be."""


# --------------------------------------------------------------------------------------- YAML


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1, pure Python) whose composer goes no deeper than
    MAX_DEPTH levels: a deeper document is refused at the first node past it."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise DocumentError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Yaml12Loader(_BoundedLoader):
    """The same, resolving plain scalars by YAML 1.2's core schema, as DVC (ruamel.yaml) reads
    dvc.yaml, dvc.lock and params.yaml: `1e-07`, which DVC writes into dvc.lock, is a number
    (YAML 1.1 reads it as text), `yes` and `on` are text, `010` is ten."""

    yaml_implicit_resolvers: dict = {}  # noqa: RUF012 (PyYAML's class attribute, replaced)


for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^(?:<<)$", "<"),
):
    _Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern),
                                        list(_first))  # fmt: skip


def _int_12(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer as YAML 1.2 writes it: decimal (a leading 0 is not octal), 0o or 0x."""
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int_12)
LOADERS = {"1.1": _BoundedLoader, "1.2": _Yaml12Loader}


def compose_yaml(text: str | bytes, version: str = "1.1") -> yaml.Node | None:
    """The YAML document's node graph (None for an empty one), its plain scalars resolved by
    YAML `version` (1.1, PyYAML's; 1.2, DVC's), once it is known to nest at most MAX_DEPTH
    levels deep and to hold at most MAX_NODES nodes with its aliases expanded; DocumentError
    otherwise, or if it is not YAML."""
    try:
        loader = LOADERS[version](text)  # its reader refuses NUL bytes and other controls here
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise DocumentError(yaml_reason(error)) from None
    except (ValueError, TypeError) as error:  # DocumentError, or a reader's decoding error
        raise DocumentError(str(error).splitlines()[0]) from None
    if node is not None:
        measure(node)
    return node


def construct_yaml(node: yaml.Node | None, version: str = "1.1") -> Any:
    """The Python value of a node graph that compose_yaml has measured."""
    if node is None:
        return None
    loader = LOADERS[version]("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as error:  # an unhashable key, a bad merge, an unknown tag
        raise DocumentError(yaml_reason(error)) from None
    except (ValueError, TypeError, OverflowError) as error:  # a date past the calendar
        raise DocumentError(f"not valid YAML: {str(error).splitlines()[0][:MAX_QUOTED]}") from None
    finally:
        loader.dispose()


def load_yaml(text: str | bytes, version: str = "1.1") -> Any:
    """A YAML document as Python values, bounded as compose_yaml says."""
    return construct_yaml(compose_yaml(text, version), version)


def yaml_reason(error: BaseException) -> str:
    """What is wrong with a YAML text, in one line: "not valid YAML: <problem> (line N)"."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        line = f" (line {error.problem_mark.line + 1})" if error.problem_mark else ""
        said = f"{error.context}, {error.problem}" if error.context else error.problem
        return f"not valid YAML: {said[: 2 * MAX_QUOTED]}{line}"
    first = (str(error).splitlines() or [type(error).__name__])[0]
    return f"not valid YAML: {first[: 2 * MAX_QUOTED]}"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def measure(root: yaml.Node) -> tuple[int, int]:
    """(nodes, depth) of a node graph as if its aliases were written out, counted without
    writing them out: each distinct node is measured once, from its children's measures.
    DocumentError past MAX_NODES or MAX_DEPTH, or for an alias inside its own anchor."""
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()  # started, not finished: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes = [measured[id(child)] for child in _children(node)]
            count = 1 + sum(size for size, _ in sizes)
            depth = 1 + max((deep for _, deep in sizes), default=0)
            if count > MAX_NODES:
                raise DocumentError(f"more than {MAX_NODES:,} values once its aliases are expanded")
            if depth > MAX_DEPTH:
                raise DocumentError(
                    f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded"
                )
            measured[key] = (count, depth)
            continue
        if key in measured:
            continue
        if key in open_nodes:
            raise DocumentError("an alias refers to the node that holds it (a loop)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return measured[id(root)]


# --------------------------------------------------------------------------------------- JSON


def _refuse_constant(name: str) -> float:
    raise DocumentError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    if not math.isfinite(number := float(text)):
        raise DocumentError(f"{quote(text)} is too large a number")
    return number


def load_json(data: str | bytes) -> Any:
    """Strict JSON (no NaN, no infinities), nesting at most MAX_DEPTH levels deep and holding at
    most MAX_NODES values; DocumentError otherwise."""
    try:
        document = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite)
    except json.JSONDecodeError as error:
        raise DocumentError(f"not valid JSON: {error.msg} (line {error.lineno})") from None
    except RecursionError:  # deeper than Python's own limit, far deeper than MAX_DEPTH
        raise DocumentError(f"nested more than {MAX_DEPTH} levels deep") from None
    except DocumentError:
        raise
    except (ValueError, TypeError) as error:  # not UTF-8, a number of 5,000 digits
        raise DocumentError(f"not valid JSON: {str(error).splitlines()[0][:80]}") from None
    _check_tree(document)
    return document


def _check_tree(document: Any) -> None:
    """Refuse a parsed JSON value nested deeper than MAX_DEPTH or with more than MAX_NODES
    values (looked at without recursion)."""
    count = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise DocumentError(f"nested more than {MAX_DEPTH} levels deep")
        if count > MAX_NODES:
            raise DocumentError(f"more than {MAX_NODES:,} values")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


# ---------------------------------------------------------------------------------------- CSV

PAIRS_HEADER = ["actual", "predicted"]
DIGITS = frozenset("0123456789")


def load_digit_pairs(data: bytes) -> list[tuple[int, int]]:
    """The evaluate stage's predictions.csv: a header `actual,predicted`, then one line of two
    digits 0-9 per test image (blank lines aside); DocumentError naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(f"not UTF-8 text (byte {error.start})") from None
    rows = csv.reader(text.splitlines())
    try:
        header = next(rows, None)
        if header != PAIRS_HEADER:
            raise DocumentError(f"the first line must be {','.join(PAIRS_HEADER)}")
        pairs = []
        for line, row in enumerate(rows, start=2):
            if not row:
                continue  # a blank line
            if len(row) != 2 or not all(len(cell) == 1 and cell in DIGITS for cell in row):
                got = quote(",".join(row))
                raise DocumentError(f"line {line}: expected two digits 0-9, got {got}")
            pairs.append((int(row[0]), int(row[1])))
    except csv.Error as error:  # a NUL byte, a quote left open, a field past csv's limit
        raise DocumentError(f"not CSV: {str(error)[:MAX_QUOTED]}") from None
    if not pairs:
        raise DocumentError("no predictions")
    return pairs
