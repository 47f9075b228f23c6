"""Score maps in the SegmentMeIfYouCan submission layout, and a reader for saved score-map folders.

The SegmentMeIfYouCan benchmark code (https://github.com/SegmentMeIfYouCan/road-anomaly-benchmark, first published as
adynathos/road-anomaly-benchmark;
``road_anomaly_benchmark/evaluation.py`` and ``datasets/dataset_io.py``) stores each frame's anomaly map as

    <DIR_OUTPUTS>/anomaly_p/<method_name>/<dataset_name>/<frame_id>.hdf5

one HDF5 file per frame holding a single dataset named ``value``: the map cast to ``float16``, written with
``create_dataset("value", data=..., compression=9)`` (gzip level 9); higher means more anomalous. The frame id is
the image file name without extension (for Lost and Found, without ``_leftImg8bit``). Outputs are stored under the
split the frames were inferred for: ``AnomalyTrack-all``, ``ObstacleTrack-all`` (all ObstacleTrack splits read
from there) and ``LostAndFound-test`` (``LostAndFound-testNoKnown`` reads from there). Point the benchmark's
``DIR_OUTPUTS`` at the ``root`` given here.

h5py is an optional dependency: ``pip install vos-seg[h5]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "HDF5_KEY",
    "SMIYC_DATASET_NAMES",
    "SubmissionWriter",
    "ScoreMapFolder",
    "benchmark_dataset_name",
    "submission_path",
    "write_score_map",
    "read_score_map",
]

HDF5_KEY = "value"  # ChannelLoaderHDF5's default var_name, used for the 'anomaly_p' channel
_COMPRESSION = 9  # gzip level, as in the benchmark's Evaluation.channels['anomaly_p']
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_MAP_EXTENSIONS = (".hdf5", ".h5", ".npy")

# vos-seg reader names -> the benchmark's storage split name (its `name_for_persistence`).
SMIYC_DATASET_NAMES = {
    "road_anomaly21": "AnomalyTrack-all",
    "road_obstacle21": "ObstacleTrack-all",
    "lost_and_found": "LostAndFound-test",
}


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed in the dev extra
        raise ImportError(
            "h5py is needed to read or write SegmentMeIfYouCan HDF5 score maps: pip install 'vos-seg[h5]' "
            "(or pip install h5py)"
        ) from exc
    return h5py


def benchmark_dataset_name(name: str) -> str:
    """The SegmentMeIfYouCan folder name for a vos-seg dataset name (the name itself when it has none)."""
    return SMIYC_DATASET_NAMES.get(name, name)


def _check_frame_id(frame_id: str) -> str:
    frame_id = str(frame_id)
    if not frame_id or "/" in frame_id or "\\" in frame_id or frame_id in (".", ".."):
        raise ValueError(f"frame id {frame_id!r} cannot be used as a file name")
    return frame_id


def submission_path(root: str | os.PathLike, method_name: str, dataset_name: str, frame_id: str) -> Path:
    """``root/anomaly_p/<method_name>/<benchmark dataset name>/<frame_id>.hdf5``."""
    method_name = _check_frame_id(method_name)
    return Path(root) / "anomaly_p" / method_name / benchmark_dataset_name(dataset_name) / (
        _check_frame_id(frame_id) + ".hdf5"
    )


def write_score_map(path: str | os.PathLike, score: Any, *, compression: int | None = _COMPRESSION) -> Path:
    """Write one score map as the benchmark does: dataset ``value``, float16, gzip.

    Values beyond the float16 range are clipped to +-65504 (float16 would turn them into inf).

    Args:
        path: the ``.hdf5`` file to write (parent folders are created).
        score: ``(H, W)`` array or tensor of finite scores, higher = more anomalous.
        compression: gzip level 0-9 (the benchmark uses 9) or None.

    Returns:
        The path written.

    Raises:
        ValueError: a map that is not 2-D or holds NaN/inf values (with their count).
        ImportError: h5py is not installed.
    """
    h5py = _import_h5py()
    array = _to_numpy(score)
    if array.ndim != 2:
        raise ValueError(f"expected a score map of shape (H, W), got {array.shape} for {path}")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ValueError(f"score map for {path} holds {bad} NaN/inf values")
    value = np.clip(array, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(HDF5_KEY, data=value, compression=compression)
    return path


def read_score_map(path: str | os.PathLike) -> np.ndarray:
    """Read a score map saved as ``.npy`` or as a benchmark ``.hdf5``/``.h5`` file (dataset ``value``).

    Returns:
        float32 ``(H, W)``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, missing ``value`` dataset (names the keys found), or not 2-D.
        ImportError: an HDF5 file and h5py is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score map {path} does not exist")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            h5py = _import_h5py()
            with h5py.File(path, "r") as handle:
                if HDF5_KEY not in handle:
                    raise ValueError(f"score map {path} has no dataset {HDF5_KEY!r} (keys: {sorted(handle.keys())})")
                array = handle[HDF5_KEY][()]
    except (OSError, EOFError) as exc:
        raise ValueError(f"score map {path} cannot be read: {exc}") from exc
    if array.ndim != 2:
        raise ValueError(f"score map {path} has shape {array.shape}, expected (H, W)")
    return np.asarray(array, dtype=np.float32)


def _to_numpy(score: Any) -> np.ndarray:
    if hasattr(score, "detach"):  # torch tensor on any device
        score = score.detach().float().cpu().numpy()
    return np.asarray(score, dtype=np.float32)


class SubmissionWriter:
    """Writes score maps to ``root/anomaly_p/<method_name>/<dataset>/<frame_id>.hdf5``.

    Args:
        root: the benchmark's ``DIR_OUTPUTS`` folder.
        method_name: the method's folder name.
        compression: gzip level (the benchmark uses 9).

    Example:
        >>> writer = SubmissionWriter("outputs", "vos_seg_energy")
        >>> writer.write("road_anomaly21", "airplane0000", np.zeros((4, 6)))
        PosixPath('outputs/anomaly_p/vos_seg_energy/AnomalyTrack-all/airplane0000.hdf5')
    """

    def __init__(self, root: str | os.PathLike, method_name: str, *, compression: int | None = _COMPRESSION) -> None:
        _import_h5py()  # fail before inference, not after the first frame
        self.root = Path(root)
        self.method_name = _check_frame_id(method_name)
        self.compression = compression

    def path(self, dataset_name: str, frame_id: str) -> Path:
        return submission_path(self.root, self.method_name, dataset_name, frame_id)

    def write(self, dataset_name: str, frame_id: str, score: Any) -> Path:
        """Write one frame's ``(H, W)`` map; returns the path."""
        return write_score_map(self.path(dataset_name, frame_id), score, compression=self.compression)


class ScoreMapFolder:
    """Saved score maps, one file per frame (``.npy`` or benchmark ``.hdf5``), for evaluation without a model.

    Two layouts are recognised:

    * a submission root holding ``anomaly_p/<method>/...``: every method folder is one score, named after it;
    * a single method folder: one score named after the folder.

    Inside a method folder the map of frame ``fid`` of dataset ``name`` is looked up as
    ``<name>/<fid>.*``, then ``<benchmark name>/<fid>.*`` (e.g. ``AnomalyTrack-all``), then ``<fid>.*``.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or (from :meth:`read`) a frame's map is missing.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"score-map folder {self.root} does not exist")
        submission = self.root / "anomaly_p"
        if submission.is_dir():
            self.methods = {p.name: p for p in sorted(submission.iterdir()) if p.is_dir()}
            if not self.methods:
                raise FileNotFoundError(f"{submission} holds no method folders")
        else:
            self.methods = {self.root.resolve().name: self.root}

    @property
    def score_names(self) -> list[str]:
        return list(self.methods)

    def find(self, score_name: str, dataset_name: str, frame_id: str) -> Path:
        """The file holding a frame's map (see the class docstring for the search order)."""
        if score_name not in self.methods:
            raise ValueError(f"unknown score {score_name!r} in {self.root}; found {', '.join(self.methods)}")
        base = self.methods[score_name]
        folders = [base / dataset_name, base / benchmark_dataset_name(dataset_name), base]
        for folder in dict.fromkeys(folders):
            for ext in _MAP_EXTENSIONS:
                candidate = folder / (frame_id + ext)
                if candidate.is_file():
                    return candidate
        raise FileNotFoundError(
            f"no score map for frame {frame_id!r} of dataset {dataset_name!r}: looked for "
            f"{folders[0] / frame_id}.{{hdf5,h5,npy}}, {folders[1] / frame_id}.* and {base / frame_id}.*"
        )

    def read(self, score_name: str, dataset_name: str, frame_id: str) -> np.ndarray:
        """float32 ``(H, W)`` map of one frame."""
        return read_score_map(self.find(score_name, dataset_name, frame_id))
