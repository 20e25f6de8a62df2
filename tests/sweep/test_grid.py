"""The -S options of mnist-sweep, read as `dvc exp run -S` reads them, without Ray."""

from __future__ import annotations

import pytest

from mnist_dvc.sweep.grid import GridError, parse_option


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
