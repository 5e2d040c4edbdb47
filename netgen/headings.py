"""Block headings of the generated prototxt: where each of the paper's blocks begins.

HED's hand-written prototxt heads each block with a comment (``### DSN conv 2 ###``) so that the
file reads like its figure. Caffe's text format drops comments when it parses, so the headings
cannot live in the NetParameter: a block function is decorated with ``@block(title)``, and while
``recording()`` is active every call records its title and the names of the layers it added.
``with_headings`` then writes, above the first of those layers in the emitted text, a line

    ### Eq. 1: class-group loss (GroupLossLayer) [rgb_t3] -- netgen/coarse_to_fine.py:group_loss ###

(``[rgb_t3]``: inside that tower of a fusion net). Outside ``recording()`` the
decorator does nothing, so the nets built for Caffe, the tests and the tools are unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from caffe.net_spec import NetSpec
from caffe.proto import caffe_pb2

F = TypeVar("F", bound=Callable[..., Any])
#: A heading's title: fixed text, or text made from the block function's bound arguments.
Title = str | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Heading:
    """One block: its heading text and the layers it added."""

    text: str
    layers: frozenset[str]


_RECORD: contextvars.ContextVar[list[Heading] | None] = contextvars.ContextVar(
    "netgen_headings", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[Heading]]:
    """Collect the headings of every ``@block`` called inside the ``with``, in call order."""
    record: list[Heading] = []
    token = _RECORD.set(record)
    try:
        yield record
    finally:
        _RECORD.reset(token)


def _layer_names(n: NetSpec, keys: list[str]) -> set[str]:
    """Names of the layers that produce the NetSpec tops ``keys`` (their ``name`` param)."""
    out = set()
    for key in keys:
        fn = n.tops[key].fn
        out.add(str(fn.params.get("name", key)))
    return out


def block(title: Title) -> Callable[[F], F]:
    """Mark a block function ``f(n: NetSpec, ...)``: while recording, each call records
    ``title`` (or ``title(arguments)``), the function's file:name and the layers it added."""

    def decorate(fn: F) -> F:
        where = f"{fn.__module__.replace('.', '/')}.py:{fn.__name__}"
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record = _RECORD.get()
            if record is None:
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            n: NetSpec = arguments["n"]
            before = len(n.tops)
            slot = len(record)  # an outer block's heading comes before its inner blocks'
            out = fn(*args, **kwargs)
            added = list(n.tops)[before:]
            if added:
                text = title(arguments) if callable(title) else title
                scope = arguments.get("s")
                prefix = getattr(scope, "prefix", "").rstrip("/")
                tower = f" [{prefix}]" if prefix else ""
                record.insert(slot, Heading(f"{text}{tower} -- {where}",
                                            frozenset(_layer_names(n, added))))
            return out

        return wrapper  # type: ignore[return-value]

    return decorate


def heading_lines(net: caffe_pb2.NetParameter, record: list[Heading]) -> dict[str, list[str]]:
    """Layer name -> the heading lines written above it: each block's heading goes above the
    first of its layers in ``net`` (blocks that left no layer in ``net`` are dropped)."""
    order = {layer.name: i for i, layer in enumerate(net.layer)}
    out: dict[str, list[str]] = {}
    for h in record:
        present = [name for name in h.layers if name in order]
        if present:
            first = min(present, key=order.__getitem__)
            out.setdefault(first, []).append(f"### {h.text} ###")
    return out


def with_headings(text: str, net: caffe_pb2.NetParameter, record: list[Heading]) -> str:
    """``text`` (text_format of ``net``) with the block headings above their first layers."""
    lines = heading_lines(net, record)
    if not lines:
        return text
    out: list[str] = []
    rows = text.split("\n")
    for i, row in enumerate(rows):
        if row == "layer {" and i + 1 < len(rows) and rows[i + 1].startswith('  name: "'):
            name = rows[i + 1][len('  name: "'):-1]
            out.extend(lines.get(name, []))
        out.append(row)
    return "\n".join(out)
