"""Training-curve and confusion-matrix PNGs."""

import numpy as np

from co2fi_tools.reporting import caffe_log, plots
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


def _png_size(path):
    header = path.read_bytes()[16:24]
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


def test_confusion_matrix_names_every_one_of_101_classes_readably(tmp_path):
    from data_prep.splits import class_names
    from tests.conftest import SHARED_SPLITS

    if (SHARED_SPLITS / "ucf101" / "classInd.txt").is_file():
        names = list(class_names("ucf101", SHARED_SPLITS / "ucf101"))
    else:  # as long as UCF101's longest ("BalanceBeam"... "HandstandPushups", 19 characters)
        names = [f"Class{i:03d}_LongName_x" for i in range(101)]
    rng = np.random.default_rng(0)
    confusion = np.diag(rng.integers(1, 10, 101)) + rng.integers(0, 2, (101, 101))
    fig = plots.confusion_figure(confusion, names, "UCF101")
    (ax, *_) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert all(t.get_fontsize() >= plots.CM_FONT_PT for t in ax.get_yticklabels())
    assert not ax.texts  # no cell values at 101 classes
    plots.plt.close(fig)
    path = plots.plot_confusion_matrix(confusion, tmp_path / "cm.png", names, "UCF101")
    width, height = _png_size(path)
    # at least 20 pixels a class: a 7-point name (about 10 pixels at 100 dpi) fits its row
    assert min(width, height) >= 101 * 20


def test_confusion_matrix_names_must_match(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="2 class names for a 3-class confusion matrix"):
        plots.plot_confusion_matrix(np.eye(3), tmp_path / "cm.png", ["a", "b"])
    assert not list(tmp_path.iterdir())


def test_plot_curves_cli(tmp_path, capsys):
    log_path = tmp_path / "run" / "train.log"
    log_path.parent.mkdir()
    log_path.write_text(LOG)
    assert plot_curves.main([str(log_path), "--json", str(tmp_path / "series.json")]) == 0
    assert _is_png(tmp_path / "run" / "curves" / "loss_heads.png")
    assert "last iteration 50" in capsys.readouterr().out
    assert plot_curves.main([str(tmp_path / "nothing.log")]) == 2
