"""What makes a SavedModel's bytes the model's alone (mnist_dvc/export.py writes it).

Left to itself TensorFlow writes, for the same model, other bytes in every process:
- the variables' order in the saved object graph and checkpoint: Keras lists them in the order
  of a TensorFlow set keyed by memory address (`sorted_variables` puts them in the model's
  order);
- dropout's seed-generator states, drawn from Python's `random` when the model is loaded and
  never read by the inference endpoint (`pinned_seed_states` fixes them for the export);
- the numbers TensorFlow's process-wide counter puts in the graph functions' names
  (`__inference___call___344`) and in the names of the variables the signatures capture
  (`renumber_saved_model` counts them 1, 2, ... instead, and TensorFlow's own code then
  rewrites fingerprint.pb for the new file);
- fingerprint.pb's `uuid`, random by design (`pin_fingerprint_uuid` derives it from the
  fingerprint's hashes of the other files).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2

from mnist_dvc.errors import ExportError

SAVED_MODEL_FILE = "saved_model.pb"  # in a SavedModel folder: graphs, signatures, objects
FINGERPRINT_FILE = "fingerprint.pb"  # in a SavedModel folder: hashes of the other files
USER_NAME_ATTR = "_user_specified_name"  # TensorFlow's record of an argument's given name


def sorted_variables(model: keras.Model, variables: Sequence[tf.Variable]) -> list[tf.Variable]:
    """The variables a traced function uses, in the model's order (TensorFlow keeps them in a
    set keyed by memory address); any the model does not own come last, by name."""
    position = {id(variable.value): index for index, variable in enumerate(model.variables)}
    return sorted(variables, key=lambda v: (position.get(id(v), len(position)), v.name))


@contextmanager
def pinned_seed_states(model: keras.Model) -> Iterator[None]:
    """Dropout's seed-generator states set to 1, 2, ... (with counter 0) while the model is
    written, then restored. Keras draws them from Python's `random` when a layer is built, so
    they differ between two loads of the same files; they only drive dropout in training,
    which the exported inference endpoint never runs."""
    states = [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]
    saved = [state.numpy() for state in states]
    try:
        for number, state in enumerate(states, start=1):
            state.assign(np.array([number, 0], dtype=state.dtype))
        yield
    finally:
        for state, value in zip(states, saved, strict=True):
            state.assign(value)


def renumber_saved_model(path: Path) -> bool:
    """Replace in saved_model.pb the numbers TensorFlow takes from its process-wide counter
    (which counts everything the process traced before the export) by 1, 2, ... in the same
    order, which within one export is the same every time; say whether anything changed.

    They are the end of each graph function's name (`__inference___call___344`, named in the
    function library, in the calls and in the object graph; the library is then listed by
    name), and the names recorded for the variables that the serving signatures' wrappers
    capture (`_user_specified_name: "348"`: captured variables, not arguments anyone passes)."""
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    renamed = {}
    for meta_graph in saved.meta_graphs:
        library = meta_graph.graph_def.library
        made = sorted((f.signature.name for f in library.function), key=_creation_number)
        numbered = {old: f"{_NUMBERED.sub('', old)}_{n}" for n, old in enumerate(made, start=1)}
        _rename_strings(meta_graph, numbered)
        functions = sorted(map(copy.deepcopy, library.function), key=lambda f: f.signature.name)
        del library.function[:]
        library.function.extend(functions)
        _number_captures(library.function)
        renamed.update(numbered)
    data = saved.SerializeToString(deterministic=True)
    new_names = set(renamed.values())
    left = [old for old in renamed if old not in new_names and old.encode() in data]
    if left:
        raise ExportError(f"{path}: function names left after renaming: {', '.join(left)}")
    if data == path.read_bytes():
        return False
    path.write_bytes(data)
    return True


def _number_captures(functions: Sequence[Any]) -> None:
    """Number the captured variables' `_user_specified_name`s 1, 2, ... in their order."""
    numbered = []
    for function in functions:
        for index, argument in enumerate(function.signature.input_arg):
            attrs = function.arg_attr[index].attr if index in function.arg_attr else {}
            name = attrs.get(USER_NAME_ATTR)
            if argument.type == types_pb2.DT_RESOURCE and name and name.s.isdigit():
                numbered.append(name)
    order = {n: place for place, n in enumerate(sorted({int(a.s) for a in numbered}), start=1)}
    for name in numbered:
        name.s = str(order[int(name.s)]).encode()


_NUMBERED = re.compile(r"_(\d+)$")


def _creation_number(name: str) -> tuple[int, str]:
    found = _NUMBERED.search(name)
    return (int(found.group(1)) if found else -1, name)


def _rename_strings(message: Message, renamed: dict[str, str]) -> None:
    """Replace every string field (map keys included) that equals a key of `renamed`."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            _rename_in_map(field, value, renamed)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                _rename_strings(item, renamed)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [renamed.get(item, item) for item in value]
            elif value in renamed:
                setattr(message, field.name, renamed[value])


def _rename_in_map(field: FieldDescriptor, entries, renamed: dict[str, str]) -> None:
    value_field = field.message_type.fields_by_name["value"]
    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
        for item in entries.values():
            _rename_strings(item, renamed)
    elif value_field.type == FieldDescriptor.TYPE_STRING:
        for key, item in list(entries.items()):
            entries[key] = renamed.get(item, item)
    if field.message_type.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING:
        return
    for key in [key for key in entries if key in renamed]:
        item = entries[key]
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            entries[renamed[key]].CopyFrom(item)
        else:
            entries[renamed[key]] = item
        del entries[key]


def pin_fingerprint_uuid(path: Path) -> None:
    """fingerprint.pb's `uuid`, which TensorFlow draws at random on every save, replaced by a
    number of the same form (128 bits, in decimal) made from the fingerprint's other fields:
    its checksum of saved_model.pb and its hashes of the graph, the signatures, the object graph
    and the checkpoint. The same files get the same uuid; other files another."""
    if not path.is_file():  # TensorFlow writes none when fingerprinting is switched off
        return
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    fingerprint.ClearField("uuid")
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))
