"""The param_str of our Python layers: a JSON object whose keys are the keyword arguments of a
Caffe-free class (py-faster-rcnn's pattern: a thin layer module, the logic beside it).

That class's constructor is the single statement of a layer's parameters and their defaults:
:func:`build` passes on the keys a param_str has and leaves the others to the constructor.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def parse(param_str: str | None, layer: str) -> dict[str, Any]:
    """The param_str as a dict (empty when there is none); ValueError naming ``layer`` when it is
    not a JSON object."""
    try:
        params = json.loads(param_str or "{}")
    except ValueError as exc:
        raise ValueError(f"{layer} param_str is not JSON ({exc}): {param_str!r}") from None
    if not isinstance(params, dict):
        raise ValueError(f"{layer} param_str must be a JSON object, got {param_str!r}")
    return params


def check_keys(params: Mapping[str, Any], allowed: Collection[str], layer: str) -> None:
    """ValueError naming every key of ``params`` that ``layer`` does not know."""
    unknown = set(params) - set(allowed)
    if unknown:
        raise ValueError(f"{layer} param_str: unknown keys {sorted(unknown)}; "
                         f"known: {sorted(allowed)}")


def parameter_keys(factory: Callable[..., Any], rename: Mapping[str, str] | None = None,
                   computed: Collection[str] = ()) -> set[str]:
    """The param_str keys that name parameters of ``factory`` (``rename``: key -> parameter,
    where they differ), leaving out the parameters the layer computes itself (``computed``)."""
    to_key = {param: key for key, param in (rename or {}).items()}
    return {to_key.get(p, p) for p in inspect.signature(factory).parameters if p not in computed}


def build(factory: Callable[..., T], params: Mapping[str, Any], layer: str,
          rename: Mapping[str, str] | None = None, other_keys: Collection[str] = (),
          **computed: Any) -> T:
    """``factory`` called with the keys of ``params`` as keyword arguments.

    ``rename`` maps a key to the parameter it sets where the names differ; ``other_keys`` are
    keys the layer reads without passing them on; ``computed`` are keyword arguments the layer
    derives itself (not keys). A key left out of ``params`` is left out of the call, so the
    constructor's default applies. ValueError, naming ``layer``, for an unknown key or a
    missing required one.
    """
    rename = dict(rename or {})
    keys = parameter_keys(factory, rename, computed)
    check_keys(params, keys | set(other_keys), layer)
    to_key = {param: key for key, param in rename.items()}
    for name, param in inspect.signature(factory).parameters.items():
        key = to_key.get(name, name)
        if param.default is param.empty and name not in computed and key not in params:
            raise ValueError(f"{layer} param_str needs {key!r}")
    args = {rename.get(key, key): value for key, value in params.items() if key in keys}
    return factory(**args, **computed)
