"""SegmentMeIfYouCan submission writer and score-map reader (vos_seg.evaluation.submission)."""

import sys

import h5py
import numpy as np
import pytest
import torch

from vos_seg.evaluation.submission import (
    HDF5_KEY,
    ScoreMapFolder,
    SubmissionWriter,
    read_score_map,
    submission_path,
    write_score_map,
)


def test_layout_matches_benchmark_paths(tmp_path):
    # road_anomaly_benchmark: DIR_OUTPUTS/anomaly_p/{method_name}/{dset_name}/{fid}.hdf5, with the datasets stored
    # under the split they are inferred for.
    assert submission_path(tmp_path, "m", "road_anomaly21", "airplane0000") == (
        tmp_path / "anomaly_p" / "m" / "AnomalyTrack-all" / "airplane0000.hdf5"
    )
    assert submission_path(tmp_path, "m", "road_obstacle21", "gravel_boot_1").parent.name == "ObstacleTrack-all"
    assert submission_path(tmp_path, "m", "lost_and_found", "x").parent.name == "LostAndFound-test"
    assert submission_path(tmp_path, "m", "synthetic", "x").parent.name == "synthetic"


def test_writer_round_trip_float16_gzip(tmp_path, rng):
    score = rng.normal(size=(37, 53)).astype(np.float32) * 3
    writer = SubmissionWriter(tmp_path, "vos_seg_energy")
    path = writer.write("road_anomaly21", "validation0001", torch.from_numpy(score))
    assert path == tmp_path / "anomaly_p" / "vos_seg_energy" / "AnomalyTrack-all" / "validation0001.hdf5"
    with h5py.File(path, "r") as handle:
        assert list(handle.keys()) == [HDF5_KEY] == ["value"]
        dataset = handle["value"]
        assert dataset.dtype == np.float16
        assert dataset.compression == "gzip" and dataset.compression_opts == 9
        stored = dataset[()]
    np.testing.assert_array_equal(stored, score.astype(np.float16))
    back = read_score_map(path)
    assert back.dtype == np.float32 and back.shape == score.shape
    diff = np.abs(back - score).max()
    assert diff <= 3 * 2**-10 * np.abs(score).max(), f"max diff {diff}"


def test_write_clips_to_float16_range_and_rejects_nonfinite(tmp_path):
    path = write_score_map(tmp_path / "a.hdf5", np.array([[1e6, -1e6], [0.5, 0.0]]))
    np.testing.assert_array_equal(read_score_map(path), [[65504, -65504], [0.5, 0.0]])
    with pytest.raises(ValueError, match="holds 2 NaN/inf values"):
        write_score_map(tmp_path / "b.hdf5", np.array([[np.nan, np.inf], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"expected a score map of shape \(H, W\), got \(2, 2, 2\)"):
        write_score_map(tmp_path / "c.hdf5", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="cannot be used as a file name"):
        submission_path(tmp_path, "m", "road_anomaly21", "a/b")


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.hdf5 does not exist"):
        read_score_map(tmp_path / "missing.hdf5")
    with h5py.File(tmp_path / "other.hdf5", "w") as handle:
        handle["anomaly"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"no dataset 'value' \(keys: \['anomaly'\]\)"):
        read_score_map(tmp_path / "other.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="cannot be read"):
        read_score_map(tmp_path / "junk.hdf5")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\), expected \(H, W\)"):
        read_score_map(tmp_path / "cube.npy")


def test_missing_h5py_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'vos-seg\[h5\]'"):
        SubmissionWriter(tmp_path, "m")
    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    assert read_score_map(tmp_path / "a.npy").shape == (2, 3)  # .npy maps need no h5py


def test_folder_layouts(tmp_path):
    submission = tmp_path / "sub"
    for method in ("m_energy", "m_msp"):
        SubmissionWriter(submission, method).write("road_anomaly21", "f1", np.full((2, 2), 0.25))
    folder = ScoreMapFolder(submission)
    assert folder.score_names == ["m_energy", "m_msp"]
    assert folder.find("m_msp", "road_anomaly21", "f1").parent.name == "AnomalyTrack-all"
    np.testing.assert_array_equal(folder.read("m_energy", "road_anomaly21", "f1"), np.full((2, 2), 0.25))
    with pytest.raises(FileNotFoundError, match="no score map for frame 'f2' of dataset 'road_anomaly21'"):
        folder.read("m_energy", "road_anomaly21", "f2")
    with pytest.raises(ValueError, match="unknown score 'energy'"):
        folder.find("energy", "road_anomaly21", "f1")

    flat = tmp_path / "my_method"
    (flat / "synthetic").mkdir(parents=True)
    np.save(flat / "a.npy", np.zeros((2, 2), np.float32))
    np.save(flat / "synthetic" / "a.npy", np.ones((2, 2), np.float32))
    folder = ScoreMapFolder(flat)
    assert folder.score_names == ["my_method"]
    assert folder.read("my_method", "synthetic", "a")[0, 0] == 1  # dataset sub-folder first
    assert folder.read("my_method", "road_anomaly", "a")[0, 0] == 0  # then the folder itself
    with pytest.raises(FileNotFoundError, match="score-map folder .* does not exist"):
        ScoreMapFolder(tmp_path / "nope")
