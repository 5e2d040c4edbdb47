"""Training-curve and confusion-matrix PNGs."""

import numpy as np

from co2fi_tools import caffe_log, plots
from tests.test_caffe_log import LOG
from tools import plot_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.exists() and path.read_bytes()[:8] == PNG_SIGNATURE


def test_training_curves_are_written(tmp_path):
    log = caffe_log.parse_lines(LOG.splitlines())
    written = plots.plot_training_curves(log, tmp_path / "curves", title="run")
    assert sorted(p.name for p in written) == ["accuracy.png", "loss_heads.png", "lr.png"]
    assert all(_is_png(p) for p in written)


def test_missing_series_produce_no_empty_plot(tmp_path):
    log = caffe_log.parse_lines(["I1 solver.cpp:218] Iteration 0, loss = 1.5"])
    written = plots.plot_training_curves(log, tmp_path)
    assert [p.name for p in written] == ["loss_heads.png"]


def test_confusion_matrix_png(tmp_path):
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 has no video
    path = plots.plot_confusion_matrix(confusion, tmp_path / "cm.png", ["a", "b", "c"])
    assert _is_png(path)
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temporary file left


def test_plot_curves_cli(tmp_path, capsys):
    log_path = tmp_path / "run" / "train.log"
    log_path.parent.mkdir()
    log_path.write_text(LOG)
    assert plot_curves.main([str(log_path), "--json", str(tmp_path / "series.json")]) == 0
    assert _is_png(tmp_path / "run" / "curves" / "loss_heads.png")
    assert "last iteration 50" in capsys.readouterr().out
    assert plot_curves.main([str(tmp_path / "nothing.log")]) == 2
