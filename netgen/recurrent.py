"""LSTMs over a short sequence of per-sample features, built from Caffe's own layers.

Both LSTMs of the paper (the 3-unit coarse-to-fine LSTM, Eq. 2, and the 5-unit asynchronous
LSTM, Sec. 5.2) see one short sequence per sample: step t of sample b is feature x_t[b]. Caffe's
recurrent layers want a time-major T x B x D input and a T x B ``cont`` blob (0 starts a
sequence, 1 continues it). ``cont`` is computed from the input itself (Reduction -> Power with
scale 0), so it follows the batch size when a deploy net is reshaped.

Two readings of "Phi_t is the parameter set of the t-th unit" (readings.lstm_weights):
``shared`` is Caffe's LSTM layer (one parameter set for every step, the usual LSTM);
``per_unit`` unrolls the LSTM by hand with one InnerProduct pair per step and Caffe's LSTMUnit
layer, so every unit has its own parameters and gradients flow through h_t and c_t (Caffe's
``expose_hidden`` shares only the data of the exposed states, recurrent_layer.cpp, so a chain of
single-step LSTM layers would cut the gradient between units).
"""

from __future__ import annotations

from caffe import layers as L
from caffe.net_spec import NetSpec, Top

from netgen.blocks import BIAS_FILLER, ELTWISE_SUM, LSTM_FILLER, Scope, as_step, flatten_steps


def _constant(n: NetSpec, name: str, bottom: Top, value: float) -> Top:
    """A blob shaped like ``bottom`` filled with ``value`` (Power with scale 0: no gradient)."""
    n[name] = L.Power(bottom, name=name, power_param={"power": 1.0, "scale": 0.0, "shift": value})
    return n[name]


def sequence_cont(n: NetSpec, s: Scope, name: str, x_seq: Top, steps: int) -> Top:
    """T x B sequence indicators for the T x B x D input ``x_seq``: 0 at step 1, 1 after."""
    src = s.name(f"{name}_cont_src")
    n[src] = L.Reduction(x_seq, name=src, reduction_param={"axis": 2}, propagate_down=[False])
    cont = s.name(f"{name}_cont")
    if steps == 1:
        return _constant(n, cont, n[src], 0.0)
    first, rest = L.Slice(n[src], name=s.name(f"{name}_cont_slice"), ntop=2,
                          slice_param={"axis": 0, "slice_point": [1]})
    n[s.name(f"{name}_cont_first_src")] = first
    n[s.name(f"{name}_cont_rest_src")] = rest
    zeros = _constant(n, s.name(f"{name}_cont_first"), first, 0.0)
    ones = _constant(n, s.name(f"{name}_cont_rest"), rest, 1.0)
    n[cont] = L.Concat(zeros, ones, name=cont, concat_param={"axis": 0})
    return n[cont]


def lstm_shared(
    n: NetSpec, s: Scope, name: str, xs: list[Top], width: int, hidden: int
) -> list[Top]:
    """Caffe's LSTM layer over the features ``xs`` (each B x width), one set of weights.

    Returns the hidden state of every step as B x hidden blobs ``<name>_h<t>``.
    """
    steps = len(xs)
    seq = [as_step(n, s.name(f"{name}_x{t}"), x, width) for t, x in enumerate(xs, start=1)]
    x_name = s.name(f"{name}_x")
    n[x_name] = L.Concat(*seq, name=x_name, concat_param={"axis": 0})
    cont = sequence_cont(n, s, name, n[x_name], steps)
    n[s.name(name)] = L.LSTM(
        n[x_name], cont, name=s.name(name),
        param=s.params(name, lr=(1.0, 2.0, 1.0), decay=(1.0, 0.0, 1.0)),
        recurrent_param={"num_output": hidden, "weight_filler": LSTM_FILLER,
                         "bias_filler": BIAS_FILLER},
        propagate_down=[True, False],
    )
    out = n[s.name(name)]
    if steps == 1:
        return [flatten_steps(n, s.name(f"{name}_h1"), out, hidden)]
    parts = L.Slice(out, name=s.name(f"{name}_slice"), ntop=steps,
                    slice_param={"axis": 0, "slice_point": list(range(1, steps))})
    hs = []
    for t, part in enumerate(parts, start=1):
        n[s.name(f"{name}_t{t}")] = part
        hs.append(flatten_steps(n, s.name(f"{name}_h{t}"), part, hidden))
    return hs


def lstm_per_unit(
    n: NetSpec, s: Scope, name: str, xs: list[Top], width: int, hidden: int
) -> list[Top]:
    """The same LSTM unrolled by hand, with its own parameters Phi_t = {M_t, b_t} per unit.

    Unit t: gates = W_x^t x_t + b^t + W_h^t h_{t-1} (InnerProducts, axis 2), then LSTMUnit
    (gate order i, f, o, g as Caffe's LSTM layer). Returns B x hidden blobs ``<name>_h<t>``.
    """
    hs: list[Top] = []
    h_prev: Top | None = None
    c_prev: Top | None = None
    for t, x in enumerate(xs, start=1):
        unit = f"{name}_t{t}"
        x_step = as_step(n, s.name(f"{name}_x{t}"), x, width)
        src = s.name(f"{unit}_cont_src")
        n[src] = L.Reduction(x_step, name=src, reduction_param={"axis": 2}, propagate_down=[False])
        cont = _constant(n, s.name(f"{unit}_cont"), n[src], 0.0 if t == 1 else 1.0)
        gx = s.name(f"{unit}_x_gates")
        n[gx] = L.InnerProduct(
            x_step, name=gx, param=s.params(f"{unit}_x"),
            inner_product_param={"num_output": 4 * hidden, "axis": 2,
                                 "weight_filler": LSTM_FILLER, "bias_filler": BIAS_FILLER},
        )
        gates = n[gx]
        if h_prev is None:
            zero_src = s.name(f"{name}_zero_src")
            n[zero_src] = L.Reshape(cont, name=zero_src,
                                    reshape_param={"shape": {"dim": [1, -1, 1]}})
            c0 = s.name(f"{name}_c0")
            n[c0] = L.Tile(n[zero_src], name=c0, tile_param={"axis": 2, "tiles": hidden})
            c_prev = n[c0]
        else:
            gh = s.name(f"{unit}_h_gates")
            n[gh] = L.InnerProduct(
                h_prev, name=gh, param=s.params(f"{unit}_h", lr=(1.0,), decay=(1.0,)),
                inner_product_param={"num_output": 4 * hidden, "axis": 2, "bias_term": False,
                                     "weight_filler": LSTM_FILLER},
            )
            gsum = s.name(f"{unit}_gates")
            n[gsum] = L.Eltwise(gates, n[gh], name=gsum, eltwise_param={"operation": ELTWISE_SUM})
            gates = n[gsum]
        c_top, h_top = L.LSTMUnit(c_prev, gates, cont, name=s.name(unit), ntop=2,
                                  propagate_down=[t > 1, True, False])
        n[s.name(f"{unit}_c")] = c_top
        n[s.name(unit)] = h_top
        c_prev, h_prev = c_top, h_top
        hs.append(flatten_steps(n, s.name(f"{name}_h{t}"), h_top, hidden))
    return hs


def lstm(
    n: NetSpec, s: Scope, name: str, xs: list[Top], width: int, hidden: int, weights: str
) -> list[Top]:
    """An LSTM over ``xs`` following readings.lstm_weights (``shared`` or ``per_unit``)."""
    if weights == "shared":
        return lstm_shared(n, s, name, xs, width, hidden)
    if weights == "per_unit":
        return lstm_per_unit(n, s, name, xs, width, hidden)
    raise ValueError(f"unknown LSTM weights reading {weights!r}")
