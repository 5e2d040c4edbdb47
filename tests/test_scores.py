"""Score files (HDF5): round trip, resume, mismatch errors; per-class tables."""

import numpy as np
import pytest

from co2fi_tools.evaluation import classification, scores

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
    writer = _writer(path)
    writer.write(0, _period_scores(0))  # a scored video: the partial file is not thrown away
    writer.close()
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
    rows = classification.per_class_table(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]),
                                          np.array([0, 1, 1]), NAMES)
    markdown = scores.per_class_markdown(rows, "per class")
    assert "| 1 | Bowling | 2 | 1 | 50.0 | Archery |" in markdown
    assert scores.per_class_csv(rows).splitlines()[1] == "0,Archery,1,1,1.000000,"
