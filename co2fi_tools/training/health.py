"""Did a training stage make its net better? Loss heads and ReLUs before and after.

A stage is probed twice on the same fixed training batches (the first ``batches`` its data
layer makes, which depend only on the run's seed): with the weights it started from and with
its final weights. It is reported when a loss head ends above where it started, or a ReLU
layer's units die (the fraction of positive outputs falls below ``DEAD_FRACTION``, or to under
a quarter of where it started), or every softmax loss head ends at chance (within ``AT_CHANCE``
of ln C, C its classes: a net that learned nothing, wherever it started). This is what a fusion
stage did before netgen.schedule: the five weight-shared towers' losses rose while their
trunk's ReLUs died (docs/REPRODUCTION.md, "fusion stage"). The comparison is Caffe-free
(``assess``); ``probe`` runs the net.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: A ReLU layer is dead when fewer of its outputs than this are positive.
DEAD_FRACTION = 0.05
#: ... or when its positive fraction falls below this share of where it started.
COLLAPSE_RATIO = 0.25
#: A layer that crosses DEAD_FRACTION counts only when it lost at least this share of its
#: active units (one hovering at the line, 5.0 % -> 4.6 %, is noise, as a loss within
#: ROSE_TOLERANCE is).
CROSS_DROP = 0.2
#: A loss head "rose" when it ends above start * (1 + ROSE_TOLERANCE) + ROSE_MARGIN.
ROSE_TOLERANCE = 0.02
ROSE_MARGIN = 0.01
#: A softmax loss head ends "at chance" at or above this share of ln(its classes); a stage is
#: reported when all of its softmax heads do
#: (CO2FI-no class grouping's appearance net that blew up ended at 0.99 of ln 12).
AT_CHANCE = 0.97
#: Fixed training batches a probe averages over.
PROBE_BATCHES = 4
#: The record of a run folder.
HEALTH_FILE = "health.json"


@dataclass
class Probe:
    """Mean loss of every head and positive fraction of every ReLU layer over the batches."""

    losses: dict[str, float] = field(default_factory=dict)
    active: dict[str, float] = field(default_factory=dict)
    #: ln(classes) of every softmax loss head (its loss when it predicts nothing).
    chance: dict[str, float] = field(default_factory=dict)


@dataclass
class Health:
    """What a stage did to its net: the probes and what is wrong."""

    start: Probe | None
    end: Probe
    rose: dict[str, tuple[float, float]] = field(default_factory=dict)  # head -> (start, end)
    dead: dict[str, tuple[float | None, float]] = field(default_factory=dict)  # relu -> (s, e)
    at_chance: dict[str, tuple[float, float]] = field(default_factory=dict)  # head -> (e, ln C)

    @property
    def ok(self) -> bool:
        return not self.rose and not self.dead and not self.at_chance

    def summary(self) -> str:
        """One line: how many heads and ReLUs were checked, and what went wrong."""
        heads, relus = len(self.end.losses), len(self.end.active)
        line = (f"{heads} loss heads ({len(self.rose)} ended above their start"
                + (f", {len(self.at_chance)} at chance" if self.at_chance else "")
                + f"), {relus} ReLU layers ({len(self.dead)} dead)")
        if self.start is None:
            line += "; no start weights to compare with"
        return line

    def problems(self, limit: int = 4) -> list[str]:
        """Lines naming what went wrong (the worst first, at most ``limit`` of each kind)."""
        out = []
        rose = sorted(self.rose.items(), key=lambda kv: kv[1][0] - kv[1][1])
        for name, (s, e) in rose[:limit]:
            out.append(f"loss head {name} rose {s:.4f} -> {e:.4f}")
        if len(rose) > limit:
            out.append(f"... and {len(rose) - limit} more loss heads rose")
        flat = sorted(self.at_chance.items())
        for name, (e, chance) in flat[:limit]:
            out.append(f"loss head {name} ended at chance: {e:.4f} (ln of its classes: "
                       f"{chance:.4f})")
        if len(flat) > limit:
            out.append(f"... and {len(flat) - limit} more loss heads at chance")
        dead = sorted(self.dead.items(), key=lambda kv: kv[1][1])
        for name, (s, e) in dead[:limit]:
            was = "" if s is None else f" (was {100 * s:.0f} %)"
            out.append(f"ReLU {name}: {100 * e:.1f} % of units active{was}")
        if len(dead) > limit:
            out.append(f"... and {len(dead) - limit} more dead ReLU layers")
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


def assess(start: Probe | None, end: Probe) -> Health:
    """Compare two probes of one net (``start`` None: only dead ReLUs at the end)."""
    health = Health(start, end)
    for name, e in end.losses.items():
        s = start.losses.get(name) if start else None
        if s is not None and np.isfinite(s) and (not np.isfinite(e)
                                                 or e > s * (1 + ROSE_TOLERANCE) + ROSE_MARGIN):
            health.rose[name] = (s, e)
    flat = {name: (e, end.chance[name]) for name, e in end.losses.items()
            if end.chance.get(name) and np.isfinite(e) and e >= AT_CHANCE * end.chance[name]}
    if flat and len(flat) == len([n for n in end.losses if end.chance.get(n)]):
        # every softmax head: the net learned nothing. One head alone may sit at chance for a
        # reason of its data: in the demo's rgb-centred fusion net the frozen flow tower's heads
        # on t5 do, while the same shared weights are above chance on t1..t4.
        health.at_chance = flat
    for name, e in end.active.items():
        s = start.active.get(name) if start else None
        if e < DEAD_FRACTION and (s is None or (s >= DEAD_FRACTION
                                                and e < (1 - CROSS_DROP) * s)):
            health.dead[name] = (s, e)
        elif s is not None and s >= DEAD_FRACTION and e < COLLAPSE_RATIO * s:
            health.dead[name] = (s, e)
    return health


def _train_layers(prototxt: Path):
    """The TRAIN-phase layers of a net file, and the tops that are losses."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    text_format.Merge(prototxt.read_text(), net)
    layers = [layer for layer in net.layer
              if not any(r.HasField("phase") and r.phase == caffe_pb2.TEST
                         for r in layer.include)]
    losses = [layer.top[0] for layer in layers
              if (layer.loss_weight and layer.loss_weight[0] > 0)
              or (layer.type == "SoftmaxWithLoss" and not layer.loss_weight)]
    relus = {layer.name: layer.top[0] for layer in layers if layer.type == "ReLU"}
    return net, layers, losses, relus


def _chance(layers, losses: list[str], net) -> dict[str, float]:
    """ln(classes) of each softmax loss head: the loss of a uniform prediction."""
    out = {}
    for layer in layers:
        if layer.type == "SoftmaxWithLoss" and layer.top and layer.top[0] in losses:
            shape = net.blobs[layer.bottom[0]].data.shape
            axis = layer.softmax_param.axis if layer.HasField("softmax_param") else 1
            classes = shape[axis]
            if classes > 1:
                out[layer.top[0]] = float(np.log(classes))
    return out


def _without_workers(net, layers) -> str:
    """The net's text with its data layer making batches in this process (no prefetch
    workers: a probe needs a few batches, and forking the driver is not worth it)."""
    from google.protobuf import text_format

    data = layers[0]
    if data.type == "Python" and data.python_param.param_str:
        params = json.loads(data.python_param.param_str)
        params["workers"] = 0
        data.python_param.param_str = json.dumps(params, sort_keys=True)
    return text_format.MessageToString(net)


def probe(prototxt: str | os.PathLike, weights: list[str | os.PathLike],
          batches: int = PROBE_BATCHES) -> list[Probe]:
    """One Probe of the TRAIN net ``prototxt`` per caffemodel of ``weights``, all on the same
    ``batches`` batches (its data layer's first, fed again to every later model)."""
    import caffe

    net_param, layers, losses, relus = _train_layers(Path(prototxt))
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as tmp:
        tmp.write(_without_workers(net_param, layers))
    try:
        caffe.set_mode_cpu()
        net = caffe.Net(tmp.name, caffe.TRAIN)
    finally:
        os.unlink(tmp.name)
    names = list(net._layer_names)
    data_tops = list(net.top_names[names[0]])
    chance = _chance(layers, losses, net)
    inputs: list[dict[str, np.ndarray]] = []
    out = []
    for k, model in enumerate(weights):
        net.copy_from(os.fspath(model))
        sums = Probe({t: 0.0 for t in losses}, {n: 0.0 for n in relus}, dict(chance))
        for b in range(batches):
            if k == 0:
                net.forward()
                inputs.append({t: net.blobs[t].data.copy() for t in data_tops})
            else:
                for t, value in inputs[b].items():
                    net.blobs[t].data[...] = value
                net.forward(start=names[1])
            for t in losses:
                sums.losses[t] += float(net.blobs[t].data.reshape(-1)[0]) / batches
            for n, top in relus.items():
                sums.active[n] += float(np.mean(net.blobs[top].data > 0)) / batches
        out.append(sums)
    return out


def check_run(train_net: Path, start_weights: Path | None, final_weights: Path,
              record: Path, batches: int = PROBE_BATCHES) -> tuple[Health, bool]:
    """Probe a finished run in a child process (Caffe aborts on what it cannot read; the
    driver must survive that), once: the record is reused while it is newer than the final
    weights. Returns the assessment and whether it was made now; RuntimeError if the probe
    failed."""
    if not (record.exists() and record.stat().st_mtime_ns >= final_weights.stat().st_mtime_ns):
        cmd = [sys.executable, "-m", "co2fi_tools.training.health", "--net", str(train_net),
               "--final", str(final_weights), "--record", str(record),
               "--batches", str(batches)]
        if start_weights is not None:
            cmd += ["--start", str(start_weights)]
        env = dict(os.environ, GLOG_minloglevel="2")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise RuntimeError(f"the health probe of {train_net} failed: {last}")
        fresh = True
    else:
        fresh = False
    data = json.loads(record.read_text())
    start = Probe(**data["start"]) if data.get("start") else None
    return assess(start, Probe(**data["end"])), fresh


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m co2fi_tools.training.health",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--net", required=True, type=Path, help="the run's train net")
    ap.add_argument("--start", type=Path, help="the weights the run started from")
    ap.add_argument("--final", required=True, type=Path, help="its final weights")
    ap.add_argument("--record", required=True, type=Path, help="where the record goes")
    ap.add_argument("--batches", type=int, default=PROBE_BATCHES)
    args = ap.parse_args(argv)
    from co2fi_tools.safe_io import atomic_write_text

    models = ([args.start] if args.start else []) + [args.final]
    probes = probe(args.net, models, args.batches)
    health = assess(probes[0] if args.start else None, probes[-1])
    atomic_write_text(args.record, health.to_json())
    print(health.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
