"""The -S options of mnist-sweep, read as `dvc exp run -S` reads them, without Ray."""

from __future__ import annotations

import pytest

from mnist_dvc.sweep.grid import GridError, expand, parse_option


@pytest.mark.parametrize(
    ("option", "parsed"),
    [
        ("train.seed=1,2", ("train.seed", ["1", "2"])),
        ("train.x=[1,2]", ("train.x", ["[1,2]"])),  # one list, not two values
        ('train.name="a,b"', ("train.name", ['"a,b"'])),
        ("params.yaml:train.seed=3", ("params.yaml:train.seed", ["3"])),
    ],
)
def test_values_are_split_as_dvc_reads_them(option, parsed):
    assert parse_option(option) == parsed


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("train.seed", "expected KEY=VALUE"),
        ("train.seed=", "an empty value"),
        ("train.seed=1,,2", "an empty value"),
        ("train.seed=1,2,", "an empty value"),
        ("train.x=[1,2", "an unclosed or stray bracket"),
        ('train.name="a', "an unclosed quote"),
        ("train seed=1", "is not a params key"),
    ],
)
def test_a_bad_option_is_one_line_in_the_users_words(option, says):
    with pytest.raises(GridError) as error:
        parse_option(option)
    message = str(error.value)
    assert message.startswith(f"-S {option!r}: ") and says in message, message
    assert "\n" not in message and "BRACKET_OPEN" not in message


def test_a_grid_larger_than_a_sweep_may_hold_is_refused_before_it_is_made():
    """400 epochs by 400 seeds (160,000 experiments, from 3,000 characters of -S) were started
    one failing clone after another; 10**4 values by four keys would not even be listed."""
    values = ",".join(map(str, range(1, 401)))
    with pytest.raises(GridError) as error:
        expand([f"train.epochs={values}", f"train.seed={values}"], "c0ffee", ())
    assert str(error.value) == (
        "the -S options make 400 x 400 = 160,000 experiments, more than a sweep may hold "
        "(at most 1,000, each a clone and a dvc exp run): sweep fewer values"
    )
    many = ",".join(map(str, range(10_000)))
    with pytest.raises(GridError, match=" = 10,000,000,000,000,000 experiments"):
        expand([f"train.{key}={many}" for key in ("seed", "epochs", "batch_size", "x")], "c", ())
    assert len(expand(["train.seed=1,1,2", f"train.epochs={values}"], "c0ffee", ())) == 800
