"""What makes an ONNX file's bytes the model's alone (mnist_dvc/export.py writes it).

tf2onnx names the nodes it inserts from a process-wide counter (`Transpose__30`), keeps one of
several equal constants depending on the order it met them, sorts nodes by those names,
numbers symbolic dimensions (`unk__40`) from the same counter and records the TensorFlow
function's name (`__inference___call___182`) in the graph's doc string. `canonical_onnx`
renames every node, intermediate value, initializer and symbolic dimension in an order found
from the graph's structure alone, and clears the doc strings; the graph's input and output
names, which callers use, stay.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
from collections.abc import Iterator

import onnx

from mnist_dvc.errors import ExportError


def canonical_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with names and order that follow from its structure alone.

    The nodes are put in a topological order that picks, among the nodes whose inputs are all
    computed, the one with the smallest key made of its operator, attributes and where each of
    its inputs comes from (a graph input by position, an initializer by its content, a node's
    output by that node's place in the order): names play no part. Nodes are then named
    `<op type>_<place>`, their outputs `<node name>:<index>`, initializers `initializer_<n>` in
    the order they are first used, symbolic dimensions `dim_<n>` (tf2onnx numbers them from its
    counter too); value_info follows the new names; doc strings are cleared.
    The graph's inputs and outputs keep their names, the ones callers feed and fetch."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    _refuse_uncanonicalizable(graph)
    kept = {value.name for value in [*graph.input, *graph.output]}
    origin = {"": "-"}  # where each value comes from, named by its structure
    origin.update({value.name: f"input{index}" for index, value in enumerate(graph.input)})
    for tensor in graph.initializer:
        origin.setdefault(tensor.name, f"initializer:{_tensor_digest(tensor)}")

    nodes = list(graph.node)
    consumers: dict[str, list[int]] = {}
    waiting = []  # per node: how many of its distinct inputs are not computed yet
    for index, node in enumerate(nodes):
        missing = {name for name in node.input if name not in origin}
        waiting.append(len(missing))
        for name in missing:
            consumers.setdefault(name, []).append(index)
    ready = [(_node_key(nodes[i], origin), i) for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[onnx.NodeProto] = []
    while ready:
        _, index = heapq.heappop(ready)
        node, place = nodes[index], len(order)
        order.append(node)
        for position, name in enumerate(node.output):
            if name:
                origin[name] = f"node{place}:{position}"
                for consumer in consumers.pop(name, []):
                    waiting[consumer] -= 1
                    if waiting[consumer] == 0:
                        heapq.heappush(ready, (_node_key(nodes[consumer], origin), consumer))
    if len(order) != len(nodes):
        raise ExportError("the ONNX graph has a cycle or uses a value that nothing produces")

    renamed = {name: name for name in kept}
    renamed[""] = ""
    for place, node in enumerate(order):
        node_name = f"{node.op_type}_{place}"
        for position, name in enumerate(node.output):
            if name and name not in kept:
                renamed[name] = _unused(f"{node_name}:{position}", kept)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    first_used = [name for node in order for name in node.input if name in initializers]
    by_use = list(dict.fromkeys(first_used))
    unused = sorted(set(initializers) - set(by_use), key=lambda name: origin[name])
    for number, name in enumerate(by_use + unused):
        renamed.setdefault(name, _unused(f"initializer_{number}", kept))

    for place, node in enumerate(order):
        node.name = f"{node.op_type}_{place}"
        node.doc_string = ""
        node.input[:] = [renamed[name] for name in node.input]
        node.output[:] = [renamed[name] for name in node.output]
        node.attribute.sort(key=lambda attribute: attribute.name)
    tensors = [initializers[name] for name in by_use + unused]
    for tensor in tensors:
        tensor.name = renamed[tensor.name]
    produced = [name for node in order for name in node.output if name]
    rank = {name: place for place, name in enumerate(produced)}
    infos = sorted(
        (info for info in graph.value_info if info.name in renamed),
        key=lambda info: rank.get(renamed[info.name], len(rank)),
    )
    for info in infos:
        info.name = renamed[info.name]
    # Detach copies first: protobuf's repeated fields own their elements.
    order, tensors, infos = ([copy.deepcopy(m) for m in items] for items in (order, tensors, infos))
    del graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(order)
    graph.initializer.extend(tensors)
    graph.value_info.extend(infos)
    symbols: dict[str, str] = {}  # symbolic dimensions (tf2onnx's `unk__40`) by first use
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in _dims(value.type):
            if dim.HasField("dim_param"):
                dim.dim_param = symbols.setdefault(dim.dim_param, f"dim_{len(symbols)}")
    graph.doc_string = ""
    result.doc_string = ""
    return result


def _refuse_uncanonicalizable(graph: onnx.GraphProto) -> None:
    """Subgraphs (If, Loop, Scan) and sparse initializers are not renamed here: refuse them
    rather than write a half-canonical file."""
    subgraph_types = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    for node in graph.node:
        if any(attribute.type in subgraph_types for attribute in node.attribute):
            raise ExportError(
                f"ONNX node {node.name} ({node.op_type}) holds a subgraph, "
                "which canonical_onnx does not rename"
            )
    if graph.sparse_initializer:
        raise ExportError(
            "the ONNX graph has sparse initializers, which canonical_onnx does not rename"
        )


def _dims(value_type: onnx.TypeProto) -> Iterator[onnx.TensorShapeProto.Dimension]:
    """The dimensions of a value's type, inside sequences, maps and optionals too."""
    kind = value_type.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        yield from getattr(value_type, kind).shape.dim
    elif kind in ("sequence_type", "optional_type"):
        yield from _dims(getattr(value_type, kind).elem_type)
    elif kind == "map_type":
        yield from _dims(value_type.map_type.value_type)


def _node_key(node: onnx.NodeProto, origin: dict[str, str]) -> str:
    attributes = sorted(node.attribute, key=lambda attribute: attribute.name)
    described = hashlib.sha256(
        b"".join(attribute.SerializeToString(deterministic=True) for attribute in attributes)
    ).hexdigest()
    inputs = ",".join(origin[name] for name in node.input)
    return f"{node.domain}:{node.op_type}|{inputs}|{described}|{len(node.output)}"


def _tensor_digest(tensor: onnx.TensorProto) -> str:
    unnamed = onnx.TensorProto()
    unnamed.CopyFrom(tensor)
    unnamed.ClearField("name")
    return hashlib.sha256(unnamed.SerializeToString(deterministic=True)).hexdigest()


def _unused(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"_{name}"
    return name
