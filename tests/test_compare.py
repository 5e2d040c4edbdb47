"""The paper's tables and our results beside them."""

import json

import pytest

from co2fi_tools.reporting import compare
from co2fi_tools.reporting import paper_tables as pt
from tools import compare as compare_cli


def _results_file(tmp_path, rows, name="results.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"schema": compare.RESULTS_SCHEMA, "results": rows}),
                    encoding="utf-8")
    return path


def _row(**fields):
    row = dict(method="CO2FI-complete", dataset="ucf101", split="1", stream="appearance",
               accuracy=0.8, mean_class_accuracy=0.79, source="runs/a/scores.h5")
    row.update(fields)
    return row


def test_paper_csv_has_every_table_entry():
    counts = {t: len(pt.paper_rows(t)) for t in (1, 2, 3)}
    # Table 1: 6 UCF101 + 2 HMDB51 methods x 3 streams; Table 2: 6 + 4 ('–' omitted);
    # Table 3: 19 UCF101 + 18 HMDB51 (C3D has no HMDB51 entry).
    assert counts == {1: 24, 2: 10, 3: 37}


def test_paper_tables_agree_where_they_repeat_a_number():
    assert pt.paper_accuracy(2, "Two-stream baseline", "ucf101", "two-stream") == \
        pt.paper_accuracy(1, "Two-stream baseline", "ucf101", "two-stream") == 89.8
    for dataset in ("ucf101", "hmdb51"):
        assert pt.paper_accuracy(2, "CO2FI", dataset, "two-stream") == \
            pt.paper_accuracy(1, "CO2FI-complete", dataset, "two-stream")
    assert pt.paper_accuracy(3, "CO2FI + ASYN", "hmdb51", "final") == 69.0


def test_method_keys_are_unique_within_each_table():
    for table in (1, 2, 3):
        methods = pt.methods_of(table)
        assert len({pt.method_key(m) for m in methods}) == len(methods)
    assert pt.method_key("Baseline+ASYN (Δ = 5)") == pt.method_key("baseline+asyn (delta=5)")


def test_results_file_gives_expected_markdown_rows(tmp_path):
    path = _results_file(tmp_path, [
        _row(),
        _row(stream="two-stream", accuracy=0.93, mean_class_accuracy=0.925),
        _row(method="baseline+asyn (delta=5)", stream="two-stream", accuracy=0.9,
             mean_class_accuracy=0.905),
    ])
    sections = compare.build_comparison(compare.read_results(path), tables=(1, 2))
    markdown = compare.to_markdown(sections)
    assert "*paper: UCF101 split 1; ours: UCF101 split 1.*" in markdown
    assert "| CO2FI-complete | appearance | 81.7 | 79.0 | 80.0 | -2.7 |" in markdown
    assert "| CO2FI-complete | two-stream | 92.8 | 92.5 | 93.0 | -0.3 |" in markdown
    assert "| CO2FI-complete | motion | 87.9 | – | – | – |" in markdown
    assert "| Baseline+ASYN (Δ = 5) | two-stream | 91.0 | 90.5 | 90.0 | -0.5 |" in markdown
    top1 = compare.to_markdown(sections, metric="top1")
    assert "| CO2FI-complete | appearance | 81.7 | 79.0 | 80.0 | -1.7 |" in top1


def test_synthetic_results_are_never_presented_as_ucf101(tmp_path):
    path = _results_file(tmp_path, [_row(dataset="synthetic", accuracy=0.5,
                                         mean_class_accuracy=0.45)])
    (section,) = compare.build_comparison(compare.read_results(path), tables=(1,))
    assert not section.comparable
    markdown = compare.to_markdown([section])
    assert ("paper: UCF101 split 1; ours: synthetic split 1, not comparable in absolute terms"
            in markdown)
    assert "paper UCF101 split 1 (reference only)" in markdown
    assert "ours synthetic split 1" in markdown and "ours UCF101" not in markdown
    assert "ours − paper" not in markdown  # no difference column
    assert "| CO2FI-complete | appearance | 81.7 | 45.0 | 50.0 |" in markdown
    csv_text = compare.to_csv([section])
    assert "1,CO2FI-complete,appearance,ucf101,1,81.7,synthetic,1,45.00,50.00,False" in csv_text


def test_split_mismatch_is_reference_only(tmp_path):
    path = _results_file(tmp_path, [_row(method="CO2FI + ASYN", stream="two-stream")])
    (section,) = compare.build_comparison(compare.read_results(path), tables=(3,))
    assert section.paper_split == "mean3" and not section.comparable
    assert "different splits" in section.caption


def test_a_run_with_fewer_classes_than_the_paper_is_reference_only(tmp_path):
    """A 3-class tree called ucf101 (mmaction2's test frames) is not the 101-class benchmark:
    no difference column, its class count in every label; 101 classes, or none recorded (older
    results files), still compare."""
    path = _results_file(tmp_path, [_row(num_classes=3), _row(num_classes=101, split="2"),
                                    _row(split="3")])
    few, full, unknown = compare.build_comparison(compare.read_results(path), tables=(1,))
    assert (few.our_classes, few.comparable) == (3, False)
    assert "not the paper's 101 classes (paper column is reference only)" in few.caption
    markdown = compare.to_markdown([few])
    assert markdown.splitlines()[0].endswith("— ours: UCF101 split 1 (3 classes)")
    assert "paper UCF101 split 1 (reference only)" in markdown
    assert "ours − paper" not in markdown
    assert "| CO2FI-complete | appearance | 81.7 | 79.0 | 80.0 |" in markdown.split("\n")
    assert ("1,CO2FI-complete,appearance,ucf101,1,81.7,ucf101,1,79.00,80.00,False,"
            "runs/a/scores.h5,3") in compare.to_csv([few]).splitlines()
    # the split check is unchanged; matching counts keep the column where split and dataset match
    assert not full.comparable and "(101 classes)" not in full.caption
    paper_split = compare.Section(1, "ucf101", "1", "ucf101", "1", full.rows, 101)
    assert paper_split.comparable and "ours − paper" in compare.to_markdown([paper_split])
    assert unknown.our_classes is None and "classes" not in unknown.caption
    hmdb = compare.Section(1, "hmdb51", "1", "hmdb51", "1", (), 51)
    assert hmdb.comparable and not compare.Section(1, "hmdb51", "1", "hmdb51", "1", (),
                                                   101).comparable


def test_bad_class_count_is_rejected(tmp_path):
    path = _results_file(tmp_path, [_row(num_classes=1)])
    with pytest.raises(ValueError, match=r"result 1: num_classes = 1 is not a class count"):
        compare.read_results(path)


def test_method_the_paper_left_blank_is_still_listed(tmp_path):
    path = _results_file(tmp_path, [_row(method="Baseline+SYN", dataset="hmdb51",
                                         stream="two-stream")])
    (section,) = compare.build_comparison(compare.read_results(path), tables=(2,))
    assert "| Baseline+SYN | two-stream | – | 79.0 | 80.0 | – |" in compare.to_markdown([section])


def test_streams_a_table_does_not_report_are_left_out(tmp_path):
    path = _results_file(tmp_path, [
        _row(method="Two-stream baseline", dataset="synthetic", stream=s)
        for s in ("appearance", "motion", "two-stream")])
    (section,) = compare.build_comparison(compare.read_results(path), tables=(2,))
    assert {(r.method, r.stream) for r in section.rows if r.ours} == {
        ("Two-stream baseline", "two-stream")}


def test_unknown_method_is_a_clear_error(tmp_path):
    path = _results_file(tmp_path, [_row(), _row(method="CO2FI-turbo")])
    with pytest.raises(ValueError, match=r"result 2: unknown method 'CO2FI-turbo'.*known methods"):
        compare.build_comparison(compare.read_results(path), source=str(path))
    assert compare_cli.main([str(path)]) == 2


def test_bad_results_rows_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"accuracy = 80.0 is not a fraction"):
        compare.read_results(_results_file(tmp_path, [_row(accuracy=80.0)]))
    with pytest.raises(ValueError, match=r"stream 'rgb'"):
        compare.read_results(_results_file(tmp_path, [_row(stream="rgb")]))
    with pytest.raises(ValueError, match=r"missing \['mean_class_accuracy'\]"):
        compare.read_results(_results_file(tmp_path, [_row(mean_class_accuracy=None)]))


def test_csv_results_round_trip_and_upsert(tmp_path):
    path = tmp_path / "results.csv"
    compare.upsert_result(path, compare.ResultRow("CO2FI", "ucf101", "1", "two-stream", 0.9, 0.89))
    compare.upsert_result(path, compare.ResultRow("CO2FI", "ucf101", "1", "two-stream", 0.95, 0.9))
    (row,) = compare.read_results(path)
    assert row.accuracy == 0.95 and row.table is None


def test_cli_writes_markdown_and_csv(tmp_path, capsys):
    path = _results_file(tmp_path, [_row()])
    md, csv_path = tmp_path / "cmp.md", tmp_path / "cmp.csv"
    assert compare_cli.main([str(path), "--tables", "1", "--markdown", str(md),
                             "--csv", str(csv_path)]) == 0
    assert "| CO2FI-complete | appearance | 81.7 | 79.0 | 80.0 | -2.7 |" in md.read_text()
    assert csv_path.read_text().startswith(",".join(compare.CSV_COLUMNS))
    assert "Table 1" in capsys.readouterr().out


def test_evaluate_scores_cli_fuses_files_and_records_the_result(tmp_path, capsys):
    import numpy as np

    from co2fi_tools.evaluation import scores
    from tools import evaluate_scores as evaluate_cli

    labels, ids, names = [0, 1, 1, 0], ["a", "b", "c", "d"], ["x", "y"]
    # per video, summed over 2 periods: appearance [2,0] [0,2] [2,0] [2,0]; motion adds
    # [0,1] [0,1] [0,3] [0,3] -> fused [2,1] [0,3] [2,3] [2,3]: predictions 0 1 1 1
    appearance = np.array([[[1, 0], [1, 0]], [[0, 1], [0, 1]], [[1, 0], [1, 0]], [[1, 0], [1, 0]]])
    motion = np.array([[[0, .5], [0, .5]], [[0, .5], [0, .5]], [[0, 1.5], [0, 1.5]],
                       [[0, 1.5], [0, 1.5]]])
    for stream, values in (("appearance", appearance), ("motion", motion)):
        scores.save_scores(tmp_path / f"{stream}.h5", scores.ScoreFile(
            {stream: values.astype(np.float32)}, np.array(labels), ids, names, "synthetic", "1",
            f"baseline_{stream}", 10))
    results = tmp_path / "results.json"
    argv = [str(tmp_path / "appearance.h5"), str(tmp_path / "motion.h5:motion"),
            "--method", "Two-stream baseline", "--stream", "two-stream", "--table", "1",
            "--results", str(results), "--out-dir", str(tmp_path / "eval")]
    assert evaluate_cli.main(argv) == 0
    assert "top-1 75.00%, mean class accuracy 75.00%" in capsys.readouterr().out
    (row,) = compare.read_results(results)
    assert (row.dataset, row.accuracy, row.mean_class_accuracy) == ("synthetic", 0.75, 0.75)
    record = json.loads(results.read_text())["results"][0]  # the keys consumers read, + top5
    assert set(record) == {"method", "dataset", "split", "stream", "accuracy",
                           "mean_class_accuracy", "source", "table", "top5", "num_classes"}
    assert record["num_classes"] == 2  # the score files' class names
    assert record["top5"] == 1.0  # 2 classes
    assert (tmp_path / "eval" / "confusion.png").exists()
    assert "| 0 | x | 2 | 1 | 50.0 | y |" in (tmp_path / "eval" / "per_class.md").read_text()
    # weights 1 and 0: appearance alone -> predictions 0 1 0 0: 3 of 4 right, recall 1 and .5
    assert evaluate_cli.main(argv[:2] + ["--weights", "1", "0"]) == 0
    assert "top-1 75.00%" in capsys.readouterr().out
    bad = argv[:2] + ["--method", "Nope", "--stream", "two-stream", "--results", str(results)]
    assert evaluate_cli.main(bad) == 2
    assert "unknown method 'Nope'" in capsys.readouterr().err
    assert len(compare.read_results(results)) == 1  # nothing written for the bad name
