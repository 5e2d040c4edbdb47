"""The checked-in prototxt/ and solvers/ are exactly what the generators emit now."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from google.protobuf import text_format

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")  # quiet Caffe in tests

from caffe.proto import caffe_pb2  # noqa: E402

from netgen.__main__ import main  # noqa: E402
from netgen.emit import differences, generate_all, stale  # noqa: E402
from netgen.presets import PRESETS  # noqa: E402
from netgen.variants import variant_names  # noqa: E402


def test_checked_in_files_are_up_to_date():
    files = generate_all(PRESETS.values())
    bad = differences(files, ROOT) + stale(files, ROOT, PRESETS.values())
    assert not bad, f"run `python -m netgen`; out of date: {bad[:10]}"


def test_every_file_parses_and_every_variant_is_there():
    files = generate_all(PRESETS.values())
    names = variant_names()
    for dataset in ("paper/ucf101", "paper/hmdb51", "small/synthetic"):
        for name in names:
            for phase in ("train", "deploy"):
                assert f"prototxt/{dataset}/{name}_{phase}.prototxt" in files
            assert f"solvers/{dataset}/{name}_solver.prototxt" in files
    for rel, text in files.items():
        msg = caffe_pb2.SolverParameter() if rel.startswith("solvers") else caffe_pb2.NetParameter()
        text_format.Merge(text, msg)
        if rel.startswith("solvers"):
            assert msg.net in files
        else:
            assert msg.layer and msg.name


def test_cli_write_then_check(tmp_path, capsys):
    assert main(["--preset", "small", "--out", str(tmp_path)]) == 0
    assert main(["--preset", "small", "--out", str(tmp_path), "--check"]) == 0
    victim = tmp_path / "prototxt/small/synthetic/co2fi_rgb_train.prototxt"
    victim.write_text(victim.read_text() + "# edited\n")
    (tmp_path / "solvers/small/synthetic/old_solver.prototxt").write_text("")
    capsys.readouterr()
    assert main(["--preset", "small", "--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "differs: prototxt/small/synthetic/co2fi_rgb_train.prototxt" in out
    assert "not generated: solvers/small/synthetic/old_solver.prototxt" in out


def test_cli_options(tmp_path):
    assert main(["--preset", "small", "--synthetic-classes", "20", "--variant", "co2fi_rgb",
                 "--side-slicing", "scale_associated", "--no-class-normalization",
                 "--out", str(tmp_path)]) == 0
    text = (tmp_path / "prototxt/small/synthetic/co2fi_rgb_train.prototxt").read_text()
    assert "num_output: 20" in text and "loss_weight: 2" in text
    assert not (tmp_path / "prototxt/small/synthetic/co2fi_flow_train.prototxt").exists()
