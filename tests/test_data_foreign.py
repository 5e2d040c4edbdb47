"""Rawframes and lists of TSN's and mmaction2's tools, read as they are.

Every test writes the same tiny videos twice: once in our layout (the reference, read as
before) and once in another tool's layout (file names, start index, tree level, list names and
format). Every frame has its own picture, so a batch made from the other layout equals the
reference batch only if every frame index, offset and count was mapped right.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from co2fi_layers import frames
from co2fi_layers.batches import ClipBatches, PeriodBatches
from co2fi_layers.prefetch import Prefetcher
from data_prep import foreign_lists, lists, rawframes
from data_prep.errors import DataError
from tests.conftest import requires_caffe

S = 24
NUM_FRAMES = {"Jump": [30, 26], "Run": [28, 33]}  # class -> frame counts of its videos
LABELS = {"Jump": 0, "Run": 1}


def _videos():
    for cls, counts in NUM_FRAMES.items():
        for i, count in enumerate(counts, start=1):
            yield cls, f"v_{cls}_g01_c0{i}", count


def _write_video(folder: Path, count: int, layout: rawframes.FrameLayout, offset: int,
                 seed: int, flow_count: int | None = None) -> None:
    """Frames 1..count and flow 1..count-1 (or flow_count), each picture its own."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    flows = count - 1 if flow_count is None else flow_count
    for i in range(1, count + 1):
        image = rng.integers(0, 256, size=(20, 28, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / layout.img(i, offset)), image)
        if i <= flows:
            plane = rng.integers(0, 256, size=(20, 28), dtype=np.uint8)
            cv2.imwrite(str(folder / layout.flow_x(i, offset)), plane)
            cv2.imwrite(str(folder / layout.flow_y(i, offset)), 255 - plane)


def write_reference(root: Path) -> Path:
    """Our layout: flat tree, TSN names from 1, separate rgb/flow lists with own counts."""
    rgb, flow = [], []
    for seed, (cls, vid, count) in enumerate(_videos()):
        _write_video(root / "frames" / vid, count, rawframes.DEFAULT_LAYOUT, 0, seed)
        rgb.append(f"{vid} {count} {LABELS[cls]}\n")
        flow.append(f"{vid} {count - 1} {LABELS[cls]}\n")
    (root / "rgb.txt").write_text("".join(rgb))
    (root / "flow.txt").write_text("".join(flow))
    return root


def write_tsn(root: Path) -> Path:
    """TSN's build_of.py + build_file_list.py: flat tree of <video>/ folders, img_/flow_x_/
    flow_y_ from 1, lists <d>_{rgb,flow}_{train,val}_split_<k>.txt with the folder's full path."""
    frames_root = root / "rawframes"
    for subset, group in (("train", "g01"), ("val", "g02")):  # disjoint, as real splits are
        rgb, flow = [], []
        for seed, (cls, vid, count) in enumerate(_videos()):
            vid = vid.replace("_g01_", f"_{group}_")
            _write_video(frames_root / vid, count, rawframes.LAYOUTS["tsn"], 0, seed)
            rgb.append(f"{frames_root / vid} {count} {LABELS[cls]}\n")
            flow.append(f"{frames_root / vid} {count - 1} {LABELS[cls]}\n")
        (root / f"ucf101_rgb_{subset}_split_1.txt").write_text("".join(rgb))
        (root / f"ucf101_flow_{subset}_split_1.txt").write_text("".join(flow))
    return root


def write_mmaction2(root: Path, start_index: int = 1, offset: int = 0) -> Path:
    """mmaction2's build_rawframes.py (level 2) + build_file_list.py: <class>/<video>/ folders,
    one list <d>_{train,val}_split_<k>_rawframes.txt of '<class>/<video> <F> <label>' (the RGB
    count) or, with an offset, '<class>/<video> <offset> <F> <label>'."""
    layout = rawframes.FrameLayout("img_{:05}.jpg", "x_{:05d}.jpg", "y_{:05d}.jpg", start_index)
    frames_root = root / "rawframes"
    for subset, group in (("train", "g01"), ("val", "g02")):  # disjoint, as real splits are
        lines = []
        for seed, (cls, vid, count) in enumerate(_videos()):
            vid = vid.replace("_g01_", f"_{group}_")
            _write_video(frames_root / cls / vid, count, layout, offset, seed)
            middle = f"{offset} {count}" if offset else f"{count}"
            lines.append(f"{cls}/{vid} {middle} {LABELS[cls]}\n")
        (root / f"ucf101_{subset}_split_1_rawframes.txt").write_text("".join(lines))
    return root


def _take(maker, n):
    with Prefetcher(maker, 0) as prefetcher:
        return [{k: v.copy() for k, v in prefetcher.next().items()} for _ in range(n)]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert np.array_equal(x[key], y[key]), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return write_reference(tmp_path_factory.mktemp("ours"))


def _reference_batches(reference, phase):
    clip_rgb = ClipBatches(str(reference / "rgb.txt"), str(reference / "frames"), "rgb", 3, S,
                           phase=phase, seed=4, test_segments=3)
    clip_flow = ClipBatches(str(reference / "flow.txt"), str(reference / "frames"), "flow", 3, S,
                            phase=phase, seed=4, test_segments=3)
    period = PeriodBatches(str(reference / "rgb.txt"), str(reference / "flow.txt"),
                           str(reference / "frames"), 2, S, delta=2, phase=phase, seed=4)
    return [_take(clip_rgb, 3), _take(clip_flow, 3), _take(period, 3)]


# --- file names ---------------------------------------------------------------------------

def test_presets_name_the_files_each_tool_writes():
    tsn, mm = rawframes.LAYOUTS["tsn"], rawframes.LAYOUTS["mmaction2"]
    assert (tsn.img(1), tsn.flow_x(1), tsn.flow_y(12)) == (
        "img_00001.jpg", "flow_x_00001.jpg", "flow_y_00012.jpg")
    assert (mm.img(1), mm.flow_x(1), mm.flow_y(12)) == ("img_00001.jpg", "x_00001.jpg",
                                                        "y_00012.jpg")
    zero = rawframes.layout_from_params({"layout": "mmaction2", "start_index": 0})
    assert (zero.img(1), zero.flow_x(3, offset=10)) == ("img_00000.jpg", "x_00012.jpg")


def test_counting_matches_whole_names_only(tmp_path):
    folder = tmp_path / "v"
    _write_video(folder, 5, rawframes.LAYOUTS["tsn"], 0, 0)
    _write_video(folder, 4, rawframes.LAYOUTS["mmaction2"], 0, 1)  # x_ beside flow_x_
    (folder / "img_00001.jpg.tmp").write_bytes(b"")
    counts = {name: rawframes.count_frames(folder, layout)
              for name, layout in rawframes.LAYOUTS.items()}
    assert counts == {"tsn": rawframes.FrameCounts(5, 4, 4),
                      "mmaction2": rawframes.FrameCounts(5, 3, 3)}


@pytest.mark.parametrize("params, message", [
    ({"img_tmpl": "img.jpg"}, "img_tmpl 'img.jpg': expected one integer field"),
    ({"flow_x_tmpl": "x_{name}.jpg"}, "flow_x_tmpl"),
    ({"start_index": 2}, "start_index must be 0 or 1"),
    ({"layout": "denseflow2"}, "unknown frame layout 'denseflow2'"),
])
def test_bad_layout_is_a_one_line_error(params, message):
    with pytest.raises(ValueError, match=message):
        rawframes.layout_from_params(params)


def test_offset_lists_are_read_and_malformed_lines_named(tmp_path):
    (tmp_path / "a.txt").write_text("Run/v_1 10 30 1\nRun/v_2 0 12 1\n")
    records = frames.read_list(tmp_path / "a.txt", "/data")
    assert records[0] == frames.VideoRecord("/data/Run/v_1", 30, 1, 10)
    (tmp_path / "b.txt").write_text("Run/v_1 10 30 1\nRun/v_2 12 1\n")
    assert frames.read_list(tmp_path / "b.txt")[1].num_frames == 12  # mixed: TSN form
    with pytest.raises(DataError, match=r"b.txt:2: malformed .*'<frame_dir> <offset> <num"):
        frames.read_list(tmp_path / "b.txt", list_format="offset")
    (tmp_path / "c.txt").write_text("Run/v_1 30 x\n")
    with pytest.raises(DataError, match=r"c.txt:1: malformed .*'<frame_dir> <num_frames> <la"):
        frames.read_list(tmp_path / "c.txt")


# --- batches from each layout ---------------------------------------------------------------

@pytest.mark.parametrize("phase", ["train", "test"])
def test_tsn_rawframes_and_lists_give_the_reference_batches(reference, tmp_path, phase):
    tsn = write_tsn(tmp_path)
    found = foreign_lists.find_lists(tsn, "ucf101", 1)
    assert found.style == "tsn" and found.data_params == {}
    rgb, flow = (str(found.files[(m, "train")]) for m in ("rgb", "flow"))
    got = [_take(ClipBatches(rgb, "", "rgb", 3, S, phase=phase, seed=4, test_segments=3), 3),
           _take(ClipBatches(flow, "", "flow", 3, S, phase=phase, seed=4, test_segments=3), 3),
           _take(PeriodBatches(rgb, flow, "", 2, S, delta=2, phase=phase, seed=4), 3)]
    for a, b in zip(got, _reference_batches(reference, phase), strict=True):
        _same(a, b)


@pytest.mark.parametrize("start_index, offset", [(1, 0), (0, 0), (1, 7)])
def test_mmaction2_level2_rawframes_and_list_give_the_reference_batches(
        reference, tmp_path, start_index, offset):
    mm = write_mmaction2(tmp_path, start_index, offset)
    found = foreign_lists.find_lists(mm, "ucf101", 1)
    assert found.style == "mmaction2" and found.data_params == {"list_counts": "rgb"}
    params = {"layout": "mmaction2", "start_index": start_index, **found.data_params}
    the_list = str(found.files[("rgb", "train")])
    assert found.files[("flow", "train")] == found.files[("rgb", "train")]
    root = str(mm / "rawframes")
    clip_rgb = ClipBatches.from_params({"list": the_list, "root": root, "modality": "rgb",
                                        "batch_size": 3, "input_size": S, "seed": 4, **params})
    clip_flow = ClipBatches.from_params({"list": the_list, "root": root, "modality": "flow",
                                         "batch_size": 3, "input_size": S, "seed": 4, **params})
    period = PeriodBatches.from_params({"rgb_list": the_list, "flow_list": the_list,
                                        "root": root, "batch_size": 2, "input_size": S,
                                        "delta": 2, "seed": 4, **params})
    got = [_take(clip_rgb, 3), _take(clip_flow, 3), _take(period, 3)]
    for a, b in zip(got, _reference_batches(reference, "train"), strict=True):
        _same(a, b)


def test_wrong_start_index_names_the_missing_file(tmp_path):
    mm = write_mmaction2(tmp_path, start_index=0)
    the_list = str(mm / "ucf101_train_split_1_rawframes.txt")
    maker = ClipBatches(the_list, str(mm / "rawframes"), "rgb", 4, S, phase="test",
                        test_segments=40, layout=rawframes.LAYOUTS["mmaction2"])
    with pytest.raises(DataError, match="missing frame file") as info:
        _take(maker, 40)
    assert info.value.path.endswith(".jpg") and "img_" in info.value.path


@requires_caffe
def test_period_data_layer_reads_mmaction2_lists_in_caffe(reference, tmp_path):
    import caffe

    mm = write_mmaction2(tmp_path, start_index=0)
    the_list = str(mm / "ucf101_train_split_1_rawframes.txt")
    params = {"rgb_list": the_list, "flow_list": the_list, "root": str(mm / "rawframes"),
              "batch_size": 2, "input_size": S, "delta": 2, "seed": 4, "phase": "train",
              "workers": 1, "layout": "mmaction2", "start_index": 0, "list_counts": "rgb"}
    tops = [f"rgb_t{t}" for t in range(1, 6)] + [f"flow_t{t}" for t in range(1, 6)] + ["label"]
    top_lines = " ".join(f'top: "{t}"' for t in tops)
    proto = (f'name: "d" layer {{ name: "d" type: "Python" {top_lines} python_param {{ '
             f'module: "co2fi_layers.period_data" layer: "PeriodDataLayer" '
             f"param_str: '{json.dumps(params)}' }} }}")
    (tmp_path / "net.prototxt").write_text(proto)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TRAIN)
    expected = _reference_batches(reference, "train")[2]
    for batch in expected[:2]:
        net.forward()
        for name in tops:
            assert np.array_equal(net.blobs[name].data, batch[name]), name


# --- lists from split files over other tools' trees --------------------------------------------

def _splits(folder: Path) -> Path:
    folder.mkdir()
    (folder / "classInd.txt").write_text("1 Jump\r\n2 Run\r\n")
    videos = list(_videos())
    (folder / "trainlist01.txt").write_text("".join(
        f"{c}/{v}.avi {LABELS[c] + 1}\r\n" for c, v, _ in videos[::2]))
    (folder / "testlist01.txt").write_text("".join(f"{c}/{v}.avi\r\n" for c, v, _ in videos[1::2]))
    return folder


@pytest.mark.parametrize("level", ["auto", "2"])
def test_lists_cli_lists_a_level2_mmaction2_tree(tmp_path, level):
    mm = write_mmaction2(tmp_path / "mm", start_index=0)
    splits = _splits(tmp_path / "splits")
    code = lists.main(["synthetic", str(splits), str(mm / "rawframes"), str(tmp_path / "l"),
                       "--no-require-done", "--layout", "mmaction2", "--start-index", "0",
                       "--level", level])
    assert code == 0
    rgb = (tmp_path / "l" / "rgb_train_split1.txt").read_text().splitlines()
    flow = (tmp_path / "l" / "flow_train_split1.txt").read_text().splitlines()
    assert rgb == ["Jump/v_Jump_g01_c01 30 0", "Run/v_Run_g01_c01 28 1"]
    assert flow == ["Jump/v_Jump_g01_c01 29 0", "Run/v_Run_g01_c01 27 1"]


def test_lists_cli_with_the_wrong_layout_says_what_it_looked_for(tmp_path, capsys):
    mm = write_mmaction2(tmp_path / "mm")
    splits = _splits(tmp_path / "splits")
    code = lists.main(["synthetic", str(splits), str(mm / "rawframes"), str(tmp_path / "l"),
                       "--no-require-done"])
    assert code == 1
    err = capsys.readouterr().err
    assert "v_Jump_g01_c01: no flow frames named like flow_x_{:05d}.jpg" in err


# --- adopting other tools' lists ----------------------------------------------------------

def test_adopted_tsn_lists_are_linked_and_subset_keeps_lines(tmp_path):
    tsn = write_tsn(tmp_path / "tsn")
    out = tmp_path / "data" / "lists"
    adopted = foreign_lists.adopt_lists(tsn, "ucf101", 1, out, tsn / "rawframes", 2, 0.5)
    assert (out / "rgb_train_split1.txt").resolve() == (
        tsn / "ucf101_rgb_train_split_1.txt").resolve()
    assert (out / "flow_val_split1.txt").is_symlink()
    rgb_sub = (out / "rgb_train_split1_frac2.txt").read_text().splitlines()
    flow_sub = (out / "flow_train_split1_frac2.txt").read_text().splitlines()
    original = (tsn / "ucf101_rgb_train_split_1.txt").read_text().splitlines()
    assert len(rgb_sub) == 2 and set(rgb_sub) <= set(original)
    assert sorted(int(line.split()[-1]) for line in rgb_sub) == [0, 1]
    assert [r.split()[0] for r in rgb_sub] == [f.split()[0] for f in flow_sub]
    assert len(adopted.written) == 6


def test_adopting_checks_folders_and_labels(tmp_path):
    mm = write_mmaction2(tmp_path / "mm")
    with pytest.raises(DataError, match=r"label 1 does not fit 1 classes"):
        foreign_lists.adopt_lists(mm, "ucf101", 1, tmp_path / "l", mm / "rawframes", 1)
    with pytest.raises(DataError, match=r"4 frame folders missing, e.g. .*/elsewhere/Jump/v_"):
        foreign_lists.adopt_lists(mm, "ucf101", 1, tmp_path / "l", tmp_path / "elsewhere", 2)
    with pytest.raises(DataError, match=r"no complete set of split-2 lists .*"
                                        r"ucf101_train_split_2_rawframes.txt"):
        foreign_lists.find_lists(mm, "ucf101", 2)


def test_run_experiment_prepares_mmaction2_rawframes_and_lists_as_they_are(tmp_path):
    from co2fi_tools.pipeline import prepare_dataset
    from co2fi_tools.training.train import TrainJob, rewrite_train_net

    mm = write_mmaction2(tmp_path / "mm", start_index=0)
    root = prepare_dataset("ucf101", tmp_path / "data", 1, None, None, mm / "rawframes",
                           "tvl1", 1, list_dir=mm, num_classes=2,
                           layout={"layout": "mmaction2", "start_index": 0})
    source = json.loads((root / rawframes.SOURCE_FILE).read_text())
    assert source == {"layout": "mmaction2", "start_index": 0, "list_counts": "rgb"}
    assert os.path.samefile(root / "lists" / "flow_val_split1.txt",
                            mm / "ucf101_val_split_1_rawframes.txt")
    # the training driver hands the dataset's source.json to every data layer
    net = tmp_path / "train.prototxt"
    params = {"rgb_list": "data/ucf101/lists/rgb_train_split1.txt",
              "flow_list": "data/ucf101/lists/flow_train_split1.txt",
              "root": "data/ucf101/frames", "batch_size": 2, "input_size": S}
    net.write_text('layer { name: "d" type: "Python" top: "rgb_t1" top: "label" python_param { '
                   f"module: \"co2fi_layers.period_data\" layer: \"PeriodDataLayer\" "
                   f"param_str: '{json.dumps(params)}' }} }}")
    pytest.importorskip("caffe")
    rewrite_train_net(TrainJob("t", str(net), "", data_root=str(root), num_classes=2),
                      tmp_path / "out.prototxt")
    written = (tmp_path / "out.prototxt").read_text()
    assert '\\"layout\\": \\"mmaction2\\"' in written and '\\"list_counts\\": \\"rgb\\"' in written
    # and evaluation reads the same way
    from co2fi_tools.evaluation.evaluate import period_source
    from co2fi_tools.pipeline import Experiment

    exp = Experiment("ucf101", root, 2, tmp_path / "out")
    videos = period_source(exp, 2, S).videos
    assert [v[1:3] for v in videos] == [(30, 29), (26, 25), (28, 27), (33, 32)]


def test_run_experiment_cli_rejects_a_bad_template_in_one_line(tmp_path, capsys):
    from co2fi_tools.pipeline import main

    mm = write_mmaction2(tmp_path / "mm")
    rc = main(["--dataset", "ucf101", "--data-root", str(tmp_path / "data"), "--out",
               str(tmp_path / "out"), "--rawframes", str(mm / "rawframes"), "--lists", str(mm),
               "--flow-x-tmpl", "x_.jpg", "--gpu", "-1"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "flow_x_tmpl 'x_.jpg': expected one integer field" in err
    assert not (tmp_path / "out").exists()
