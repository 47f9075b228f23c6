"""The heatmap run behind ``tools/heatmap.py``: inference, scores, shared normalisation, PNG/NPY/HDF5 writing.

Shared normalisation needs the whole dataset before the first image can be coloured, so data-driven modes
(``percentiles``, ``calibrated``) run in two passes: pass 1 computes every score map once, feeds the
normalizers and keeps the maps as float32 ``.npy`` files (under ``<out>/<score>/npy`` with ``save_npy``,
else in a temporary folder under ``out_dir``, removed at the end); pass 2 renders them. Fixed and per-image
modes render in one pass. A frame whose file is missing or unreadable is reported by name in
:attr:`HeatmapReport.failures` and the run continues.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vos_seg.engine.heatmap_inputs import HeatmapInput
from vos_seg.viz import ScoreNormalizer, render_panel, render_view
from vos_seg.viz.render import overlay, render_anomaly_map

__all__ = ["HeatmapOptions", "HeatmapReport", "make_heatmaps", "VIEWS", "write_png"]

VIEWS = ("map", "overlay", "panel")
_LOAD_ERRORS = (FileNotFoundError, ValueError, OSError)


@dataclass
class HeatmapOptions:
    """What :func:`make_heatmaps` computes and writes (defaults: energy panels, dataset-percentile colours).

    Attributes:
        scores: names from ``vos_seg.scores.SCORE_NAMES``. views: subset of :data:`VIEWS` (may be empty).
        normalization: ``"fixed"`` (needs ``value_range``), ``"percentiles"``, ``"calibrated"`` (needs
            labelled inputs), ``"per_image"``. percentiles: colour range percentiles of the data modes.
        thresholds: detection threshold per score (raw score units); calibrated mode supplies its own.
        plain: write map/overlay views as bare (H, W) images without title, colorbar and caption.
        save_npy: also keep raw float32 maps at ``<out>/<score>/npy/<frame_id>.npy``.
        submission_dir: write SegmentMeIfYouCan HDF5 maps there (method ``<method_name>_<score>``).
        flat: write PNGs as ``<out>/<frame_id>_<score>_<view>.png`` instead of ``<out>/<score>/<view>/<id>.png``.
    """

    scores: Sequence[str] = ("energy",)
    views: Sequence[str] = ("panel",)
    normalization: str = "percentiles"
    value_range: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (1.0, 99.0)
    thresholds: dict[str, float] = field(default_factory=dict)
    cmap: str = "inferno"
    alpha: float = 0.5
    batch_size: int = 1
    mode: str = "whole"
    crop_size: tuple[int, int] = (512, 1024)
    scale: float = 1.0
    amp: bool = False
    plain: bool = False
    tile_width: int = 480
    save_npy: bool = False
    submission_dir: str | os.PathLike | None = None
    dataset_name: str = "images"
    method_name: str = "vos_seg"
    flat: bool = False


@dataclass
class HeatmapReport:
    """Outcome of a run: files written, ``failures`` as (source, message), the fitted normalizers."""

    written: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    normalizers: dict[str, ScoreNormalizer] = field(default_factory=dict)
    num_frames: int = 0


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array as PNG (parents created); raises OSError naming the path on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {str(path)!r}")
    return path


def _normalizer(options: HeatmapOptions) -> ScoreNormalizer:
    if options.normalization == "fixed":
        if options.value_range is None:
            raise ValueError("normalization 'fixed' needs value_range=(vmin, vmax)")
        return ScoreNormalizer.fixed(*options.value_range)
    if options.normalization == "per_image":
        return ScoreNormalizer.per_image()
    return ScoreNormalizer(options.normalization, percentiles=options.percentiles)


def _check(options: HeatmapOptions, inputs: Sequence[HeatmapInput], model) -> None:
    from vos_seg.scores import SCORE_NAMES

    needs_vos = [s for s in options.scores if s in ("weighted_energy", "vos_posterior")]
    if needs_vos and model.vos_loss is None:  # fail before any inference, not at the first batch
        raise ValueError(f"scores {needs_vos} need a checkpoint trained with the VOS plugin; this one has none")
    unknown = [s for s in options.scores if s not in SCORE_NAMES] + [v for v in options.views if v not in VIEWS]
    if unknown or not options.scores:
        raise ValueError(f"unknown or missing scores/views {unknown}; scores: {SCORE_NAMES}, views: {VIEWS}")
    if options.normalization == "calibrated" and not all(i.has_labels for i in inputs):
        raise ValueError("calibrated normalisation needs anomaly labels: use a dataset reader (--dataset), "
                         "not plain images")
    if options.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {options.batch_size}")


def _batches(inputs, report: HeatmapReport, batch_size: int, progress):
    """Yield lists of (input, image, labels) of equal image size, recording load failures."""
    batch: list = []
    for item in inputs:
        try:
            image, labels = item.load()
        except _LOAD_ERRORS as exc:
            report.failures.append((item.source, str(exc)))
            progress.update(1)
            continue
        if batch and (len(batch) == batch_size or batch[0][1].shape != image.shape):
            yield batch
            batch = []
        batch.append((item, image, labels))
    if batch:
        yield batch


@torch.no_grad()
def _logits(model, images: list[np.ndarray], options: HeatmapOptions) -> torch.Tensor:
    from vos_seg.engine.inference import predict_logits, preprocess

    device = next(model.model.parameters()).device
    batch = torch.stack([preprocess(image, options.scale) for image in images]).to(device)
    logits = predict_logits(model.model, batch, mode=options.mode, crop_size=options.crop_size, amp=options.amp)
    height, width = images[0].shape[:2]
    if logits.shape[-2:] != (height, width):  # --scale: maps come back at the frame's full resolution
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits


def _fit_sml(model, inputs, options, report, tqdm):
    from vos_seg.scores import StandardizedMaxLogit

    sml = StandardizedMaxLogit(model.num_classes).to(next(model.model.parameters()).device)
    with tqdm(total=len(inputs), desc="fitting SML on the inputs", unit="img") as bar:
        for batch in _batches(inputs, HeatmapReport(), options.batch_size, bar):
            sml.fit(_logits(model, [image for _, image, _ in batch], options))
            bar.update(len(batch))
    return sml


def make_heatmaps(model, inputs: Sequence[HeatmapInput], out_dir: str | os.PathLike,
                  options: HeatmapOptions | None = None, *, progress: bool = True) -> HeatmapReport:
    """Render anomaly heatmaps of ``inputs`` with a loaded model, writing ``<out>/<score>/<view>/<id>.png``
    (``<out>/<id>_<score>_<view>.png`` with ``options.flat``).

    Args:
        model: a :class:`vos_seg.engine.checkpoint.InferenceModel` (``load_inference_model``).
        inputs: from :func:`~vos_seg.engine.heatmap_inputs.collect_images` or ``dataset_inputs``.
        out_dir: output folder (created). Each score also gets ``normalizer.json`` (range, threshold).
        options: :class:`HeatmapOptions`. progress: show tqdm bars.

    Returns:
        A :class:`HeatmapReport`; frames that failed to load are listed there, not raised.

    Raises:
        ValueError: unknown score or view, calibrated mode without labels, a score the checkpoint cannot
            give (``weighted_energy`` without VOS), or a normalizer that saw no valid pixel.
    """
    from tqdm.auto import tqdm as _tqdm

    from vos_seg.scores import compute_scores

    options = options or HeatmapOptions()
    _check(options, inputs, model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def tqdm(**kwargs):
        return _tqdm(disable=not progress, dynamic_ncols=True, **kwargs)

    report = HeatmapReport(num_frames=len(inputs))
    report.normalizers = {name: _normalizer(options) for name in options.scores}
    two_pass = next(iter(report.normalizers.values())).needs_fit
    sml = _fit_sml(model, inputs, options, report, tqdm) if "sml" in options.scores else None
    writer = None
    if options.submission_dir is not None:
        from vos_seg.evaluation.submission import SubmissionWriter

        writer = {s: SubmissionWriter(options.submission_dir, f"{options.method_name}_{s}") for s in options.scores}
    cache = tempfile.TemporaryDirectory(dir=out_dir, prefix=".cache-") if two_pass else None
    npy_root = out_dir if options.save_npy or cache is None else Path(cache.name)
    done: list[HeatmapInput] = []
    try:
        with tqdm(total=len(inputs), desc="scoring" if two_pass else "scoring + rendering", unit="img") as bar:
            for batch in _batches(inputs, report, options.batch_size, bar):
                logits = _logits(model, [image for _, image, _ in batch], options)
                with torch.no_grad():  # phi and the energy weights require grad
                    scores = compute_scores(logits, options.scores, vos_loss=model.vos_loss, sml=sml)
                scores = {name: value.float().cpu().numpy() for name, value in scores.items()}
                predictions = logits.argmax(1).cpu().numpy().astype(np.int32)
                for k, (item, image, labels) in enumerate(batch):
                    maps = {name: np.ascontiguousarray(value[k]) for name, value in scores.items()}
                    for name, score in maps.items():
                        if options.save_npy or two_pass:
                            report.written.extend(_save_npy(npy_root / name / "npy" / f"{item.frame_id}.npy", score,
                                                            options.save_npy))
                        if writer is not None:
                            report.written.append(writer[name].write(options.dataset_name, item.frame_id, score))
                        if two_pass and not (labels is None and options.normalization == "calibrated"):
                            report.normalizers[name].update(score, labels)
                    if two_pass:
                        _save_npy(Path(cache.name) / "prediction" / f"{item.frame_id}.npy", predictions[k], False)
                        done.append(item)
                    else:
                        _render(item, image, labels, maps, predictions[k], model, options, report, out_dir)
                bar.update(len(batch))
        if two_pass:
            _render_pass(done, npy_root, Path(cache.name), model, options, report, out_dir, tqdm)
    finally:
        if cache is not None:
            cache.cleanup()
    for name, normalizer in report.normalizers.items():
        summary = {"score": name, **(normalizer.summary() if not two_pass or normalizer.num_samples else {})}
        path = out_dir / name / "normalizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")
    return report


def _save_npy(path: Path, array: np.ndarray, record: bool) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array.astype(np.float32) if array.dtype.kind == "f" else array)
    return [path] if record else []


def _render_pass(done, npy_root, cache_root, model, options, report, out_dir, tqdm) -> None:
    with tqdm(total=len(done), desc="rendering", unit="img") as bar:
        for item in done:
            try:
                image, labels = item.load()
            except _LOAD_ERRORS as exc:  # changed on disk between the passes
                report.failures.append((item.source, str(exc)))
                continue
            maps = {name: np.load(npy_root / name / "npy" / f"{item.frame_id}.npy") for name in options.scores}
            prediction = np.load(cache_root / "prediction" / f"{item.frame_id}.npy")
            _render(item, image, labels, maps, prediction, model, options, report, out_dir)
            bar.update(1)


def _render(item, image, labels, maps, prediction, model, options, report, out_dir) -> None:
    for name, score in maps.items():
        normalizer = report.normalizers[name]
        threshold = options.thresholds.get(name)
        title = f"{item.frame_id}: {name}"
        for view in options.views:
            if view == "panel":
                rgb = render_panel(image, score, normalizer=normalizer, prediction=prediction,
                                   class_names=model.class_names, labels=labels, threshold=threshold,
                                   cmap=options.cmap, title=title, score_name=name, tile_width=options.tile_width)
            elif options.plain:
                rgb = (render_anomaly_map(image, score, normalizer=normalizer, cmap=options.cmap) if view == "map"
                       else overlay(image, score, normalizer=normalizer, alpha=options.alpha, cmap=options.cmap))
            else:
                rgb = render_view(image, score, view=view, normalizer=normalizer, alpha=options.alpha,
                                  cmap=options.cmap, title=title, score_name=name, threshold=threshold)
            path = (out_dir / f"{item.frame_id}_{name}_{view}.png" if options.flat
                    else out_dir / name / view / f"{item.frame_id}.png")
            report.written.append(write_png(path, rgb))
