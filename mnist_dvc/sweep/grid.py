"""A sweep's grid: `-S` options in `dvc exp run`'s syntax, with comma-separated values, expanded
to one experiment per combination, each named from its commit and params so that running the
same sweep again finds the experiments it already ran."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from mnist_dvc.errors import ToolError

NAME_PREFIX = "sweep-"
# dvc exp names become git refs: keep them short, lowercase hex after the prefix.
NAME_DIGITS = 10
_KEY = re.compile(r"^(?:[^:=\s]+:)?[A-Za-z_][\w.\-\[\]]*$")  # [file:]dotted.key
_PARSER = OverridesParser.create()
# The most experiments one sweep may hold: each is a clone, a `dvc pull` and a `dvc exp run` of
# minutes, and a ref on the git remote. A grid a few -S lists long can hold millions (400 epochs
# by 400 seeds, 3,000 characters, is 160,000: it was started, one failing clone after another).
MAX_EXPERIMENTS = 1000


class GridError(ToolError):
    """A `-S` option that cannot be read. The message says what to write instead."""


@dataclass(frozen=True)
class Experiment:
    name: str
    overrides: tuple[str, ...]  # `key=value`, each given to `dvc exp run -S` as is
    label: str  # the overrides that differ between the grid's experiments


def parse_option(option: str) -> tuple[str, list[str]]:
    """`train.seed=1,2` -> ("train.seed", ["1", "2"]), read by Hydra's override parser, the one
    `dvc exp run -S` uses: commas inside brackets or quotes belong to one value
    (`train.x=[1,2]` is one list), and each value comes back as DVC would read it again."""
    key, sep, _ = option.partition("=")
    key = key.strip()
    example = "as in -S train.epochs=6,12"
    if not sep or not key:
        raise GridError(f"-S {option!r}: expected KEY=VALUE[,VALUE...], {example}")
    if not _KEY.match(key):
        raise GridError(f"-S {option!r}: {key!r} is not a params key, {example}")
    # `params.yaml:train.seed=1`: the file is DVC's, the rest Hydra's.
    prefix, colon, dotted = key.rpartition(":")
    value = option.partition("=")[2]
    try:
        parsed = _PARSER.parse_override(f"{dotted}={value}")
    except HydraException as error:
        raise GridError(f"-S {option!r}: {_reason(str(error), value)}, {example}") from None
    if parsed.is_sweep_override():
        values = list(parsed.sweep_string_iterator())
    else:
        values = [parsed.get_value_element_as_str()]
    if any(not value.strip() for value in values):
        raise GridError(f"-S {option!r}: an empty value; give each value, {example}")
    return f"{prefix}{colon}{parsed.key_or_group}", values


def _reason(message: str, value: str) -> str:
    """Hydra's parser error (ANTLR's words, and the grammar's token names) as a user's reason."""
    first = message.strip().splitlines()[0] if message.strip() else "cannot be read"
    if "input ','" in first or "input '<EOF>'" in first:
        return "an empty value; give each value"
    if any(value.count(a) != value.count(b) for a, b in ("[]", "{}", "()")):
        return "an unclosed or stray bracket"
    if first.startswith("token recognition error"):
        return "an unclosed quote"
    return re.sub(r" expecting \{.*\}$", "", first)


def expand(options: list[str], commit: str, targets: tuple[str, ...]) -> list[Experiment]:
    """Every combination of the options' values, in the order given (the last key varies
    fastest), each named from the commit, the targets and its params."""
    if not options:
        raise GridError("nothing to sweep: give at least one -S KEY=VALUE[,VALUE...]")
    keys, choices = [], []
    for option in options:
        key, values = parse_option(option)
        if key in keys:
            raise GridError(f"-S {key} is given twice: list its values once, comma-separated")
        keys.append(key)
        choices.append(values)
    count = math.prod(len(set(values)) for values in choices)  # before a combination is made
    if count > MAX_EXPERIMENTS:
        sizes = " x ".join(f"{len(set(values)):,}" for values in choices)
        raise GridError(
            f"the -S options make {sizes} = {count:,} experiments, more than a sweep may hold "
            f"(at most {MAX_EXPERIMENTS:,}, each a clone and a dvc exp run): sweep fewer values"
        )
    varying = {key for key, values in zip(keys, choices, strict=True) if len(values) > 1}
    experiments, seen = [], set()
    for combination in itertools.product(*choices):
        pairs = list(zip(keys, combination, strict=True))
        if tuple(pairs) in seen:  # `-S seed=1,1`: one experiment, not two of the same name
            continue
        seen.add(tuple(pairs))
        overrides = tuple(f"{key}={value}" for key, value in pairs)
        label = " ".join(f"{key}={value}" for key, value in pairs if key in varying)
        label = label or " ".join(overrides)
        experiments.append(Experiment(name_for(commit, targets, overrides), overrides, label))
    return experiments


def name_for(commit: str, targets: tuple[str, ...], overrides: tuple[str, ...]) -> str:
    """The same commit, targets and params always give the same name (so a second run of a
    sweep can skip what exists); the order of the -S options does not matter."""
    identity = {"commit": commit, "targets": list(targets), "set": sorted(overrides)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{NAME_PREFIX}{digest[:NAME_DIGITS]}"
