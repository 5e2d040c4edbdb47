"""Metrics and fusion on hand-made score arrays with hand-computed answers; score files."""

import numpy as np
import pytest

from co2fi_tools import metrics, scores

# 5 videos, 3 classes; the top-1 predictions are [0, 1, 1, 2, 0].
VIDEO_SCORES = np.array([[3.0, 1.0, 0.0],
                         [0.0, 2.0, 1.0],
                         [1.0, 4.0, 0.0],
                         [0.0, 0.0, 5.0],
                         [2.0, 0.0, 1.0]])
LABELS = np.array([0, 0, 1, 2, 2])


def test_top1_accuracy():
    assert metrics.top1_accuracy(VIDEO_SCORES, LABELS) == pytest.approx(3 / 5)


def test_mean_class_accuracy_is_mean_of_per_class_recall():
    # recall: class 0 = 1/2, class 1 = 1/1, class 2 = 1/2
    assert metrics.mean_class_accuracy(VIDEO_SCORES, LABELS) == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_confusion_matrix_rows_are_true_classes():
    expected = np.array([[1, 1, 0],
                         [0, 1, 0],
                         [1, 0, 1]])
    np.testing.assert_array_equal(metrics.confusion_matrix(VIDEO_SCORES, LABELS), expected)


def test_class_absent_from_test_set_is_left_out_of_the_mean():
    scores = np.array([[1.0, 0, 0, 2.0],   # true 0, predicted 3 (a class with no test video)
                       [1.0, 0, 0, 0],     # true 0, right
                       [0, 1.0, 0, 0]])    # true 1, right
    labels = np.array([0, 0, 1])
    recall = metrics.per_class_recall(metrics.confusion_matrix(scores, labels))
    assert recall[0] == pytest.approx(0.5) and recall[1] == 1.0
    assert np.isnan(recall[2]) and np.isnan(recall[3])
    assert metrics.mean_class_accuracy(scores, labels) == pytest.approx(0.75)
    assert metrics.top1_accuracy(scores, labels) == pytest.approx(2 / 3)


def test_per_class_table():
    rows = metrics.per_class_table(VIDEO_SCORES, LABELS, ["a", "b", "c"])
    assert [(r.name, r.support, r.correct) for r in rows] == [("a", 2, 1), ("b", 1, 1),
                                                                ("c", 2, 1)]
    assert rows[0].most_confused_with == "b" and rows[1].most_confused_with == ""
    assert rows[2].most_confused_with == "a"


def test_video_scores_sum_over_periods():
    periods = np.array([[[1.0, 2.0], [3.0, -1.0]]])
    np.testing.assert_allclose(metrics.video_scores(periods), [[4.0, 1.0]])


def test_softmax_period_mode_differs_from_raw():
    # raw sum [5, 3] -> class 0; softmax per period: [.9933, .0067] + 3 x [.2689, .7311]
    # = [1.80, 2.20] -> class 1
    periods = np.array([[[5.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    assert metrics.predictions(metrics.video_scores(periods, "raw"))[0] == 0
    fused = metrics.video_scores(periods, "softmax_period")
    np.testing.assert_allclose(fused, [[1.8001, 2.1999]], atol=1e-3)
    assert metrics.predictions(fused)[0] == 1


def test_fuse_sums_models_and_periods_raw_and_softmax_video():
    a = np.array([[[1.0, 0.0, 0.0]]])   # appearance-centred: one video, one period
    b = np.array([[[0.0, 1.5, 1.5]]])   # motion-centred
    raw = metrics.fuse({"a": a, "b": b})
    np.testing.assert_allclose(raw, [[1.0, 1.5, 1.5]])
    assert metrics.predictions(raw)[0] == 1
    # softmax per model: a -> [.576, .212, .212], b -> [.100, .450, .450]
    soft = metrics.fuse({"a": a, "b": b}, mode="softmax_video")
    np.testing.assert_allclose(soft, [[0.6766, 0.6617, 0.6617]], atol=1e-3)
    assert metrics.predictions(soft)[0] == 0


def test_fuse_weights():
    a = np.array([[[1.0, 0.0, 0.0]]])
    b = np.array([[[0.0, 1.5, 1.5]]])
    np.testing.assert_allclose(metrics.fuse({"a": a, "b": b}, {"b": 0.5}), [[1.0, 0.75, 0.75]])
    with pytest.raises(ValueError, match="unknown models"):
        metrics.fuse({"a": a}, {"c": 1.0})


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="labels must lie in"):
        metrics.top1_accuracy(VIDEO_SCORES, np.array([0, 0, 1, 2, 3]))
    with pytest.raises(ValueError, match="unknown fusion mode"):
        metrics.video_scores(np.zeros((1, 1, 2)), "mean")
    with pytest.raises(ValueError, match=r"\[videos x periods x classes\]"):
        metrics.video_scores(np.zeros((2, 3)))


# --- score files (HDF5): round trip, resume, mismatch errors, per-class tables ---
IDS = ["v_a", "v_b", "v_c"]
NAMES = ["Archery", "Bowling"]
SCORE_LABELS = [0, 1, 1]


def _writer(path, **overrides):
    kwargs = dict(streams=["appearance", "motion"], num_periods=2, labels=SCORE_LABELS,
                  video_ids=IDS, class_names=NAMES, dataset="synthetic", split="1",
                  net="co2fi_complete", iteration=100)
    kwargs.update(overrides)
    return scores.ScoreWriter(path, **kwargs)


def _period_scores(i):
    return {"appearance": np.full((2, 2), i, np.float32),
            "motion": np.full((2, 2), -i, np.float32)}


def test_writer_resumes_and_renames_when_complete(tmp_path):
    path = tmp_path / "scores.h5"
    writer = _writer(path)
    writer.write(0, _period_scores(0))
    assert writer.close() == scores.partial_path(path) and not path.exists()

    writer = _writer(path)  # resumes the partial file
    assert writer.done(0) and not writer.done(1) and writer.num_done == 1
    for i in (1, 2):
        writer.write(i, _period_scores(i))
    assert writer.close() == path and path.exists()
    assert not scores.partial_path(path).exists()

    loaded = scores.load_scores(path)
    assert loaded.video_ids == IDS and loaded.class_names == NAMES
    assert loaded.dataset == "synthetic" and loaded.iteration == 100
    np.testing.assert_array_equal(loaded.scores["appearance"][2], np.full((2, 2), 2))
    assert loaded.scores["motion"].shape == (3, 2, 2)

    writer = _writer(path)  # a complete file: everything done, nothing to write
    assert all(writer.done(i) for i in range(3))
    with pytest.raises(ValueError, match="complete"):
        writer.write(0, _period_scores(0))
    writer.close()


def test_mismatch_names_file_and_field(tmp_path):
    path = tmp_path / "scores.h5"
    _writer(path).close()
    with pytest.raises(ValueError, match=r"scores\.h5\.partial.*iteration is 100 in the file, "
                                         r"200 requested"):
        _writer(path, iteration=200)
    with pytest.raises(ValueError, match="labels differ"):
        _writer(path, labels=[1, 1, 1])


def test_partial_file_is_refused_by_default(tmp_path):
    path = tmp_path / "scores.h5"
    writer = _writer(path)
    writer.write(0, _period_scores(0))
    writer.close()
    with pytest.raises(FileNotFoundError, match="unfinished evaluation"):
        scores.load_scores(path)
    partial = scores.load_scores(scores.partial_path(path), allow_partial=True)
    assert partial.done.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="2 of 3 videos have no scores"):
        scores.load_scores(scores.partial_path(path))


def test_write_checks_shape(tmp_path):
    writer = _writer(tmp_path / "s.h5")
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        writer.write(0, {"appearance": np.zeros((3, 2)), "motion": np.zeros((2, 2))})
    writer.close()


def test_save_scores_atomic_round_trip(tmp_path):
    path = tmp_path / "s.h5"
    data = scores.ScoreFile(scores={"rgb": np.arange(12, dtype=np.float32).reshape(3, 2, 2)},
                            labels=np.array(SCORE_LABELS), video_ids=IDS, class_names=NAMES,
                            dataset="ucf101", split="1", net="baseline", iteration=5)
    scores.save_scores(path, data)
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]
    loaded = scores.load_scores(path)
    np.testing.assert_array_equal(loaded.scores["rgb"], data.scores["rgb"])
    assert loaded.done.all()


def test_per_class_markdown_and_csv():
    rows = metrics.per_class_table(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]), np.array([0, 1, 1]),
                                   NAMES)
    markdown = scores.per_class_markdown(rows, "per class")
    assert "| 1 | Bowling | 2 | 1 | 50.0 | Archery |" in markdown
    assert scores.per_class_csv(rows).splitlines()[1] == "0,Archery,1,1,1.000000,"
