"""Road-anomaly benchmark evaluation: pixel and component metrics for several scores and datasets at once.

:func:`evaluate` runs a model (or reads saved score maps) once per frame, computes every requested score from the
same logits, and measures each score the way the benchmarks do:

* **pixel metrics** (:class:`vos_seg.metrics.PixelMetrics`): AUROC, AP, FPR95 pooled over all non-void pixels
  (per image for StreetHazards, whose reader sets ``per_image_metrics``);
* **component metrics** (:class:`vos_seg.metrics.ComponentMetrics`, SegmentMeIfYouCan's sIoU, PPV and mean F1)
  at the pixel F1-optimal threshold, which is known only after all frames: the per-frame maps are kept as
  float16 (the precision of benchmark submissions; in memory up to ``max_memory_mb``, in a temporary folder
  beyond) and scanned a second time. Pixels within float16 rounding (relative 2**-11) of the threshold may fall
  on the other side of it, exactly as for a float16 benchmark submission. Presets follow the benchmark: ObstacleTrack settings (components of at
  least 50 predicted / 10 ground-truth pixels) for RoadObstacle21 and Lost and Found, AnomalyTrack settings
  (500 / 100) for the others.

Example:
    >>> result = evaluate("runs/demo/best.pt", [("synthetic", "data/synth")], ["energy", "msp"])
    >>> result.metrics["synthetic"]["energy"]["auroc"]
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .sml import sml_from_config
from .sources import (
    FolderScorer,
    ModelScorer,
    check_score_names,
    frame_batches,
    model_device,
    open_frames,
)
from .store import ScoreMapStore
from ..scores import SCORE_NAMES, StandardizedMaxLogit
from .submission import ScoreMapFolder, SubmissionWriter

__all__ = ["EvaluationResult", "EvaluationWarning", "COMPONENT_TRACKS", "evaluate"]

# vos-seg dataset name -> SegmentMeIfYouCan component-metric track (anything else: "anomaly").
COMPONENT_TRACKS = {"road_obstacle21": "obstacle", "lost_and_found": "obstacle"}
_FLOAT16_MAX = float(np.finfo(np.float16).max)


class EvaluationWarning(UserWarning):
    """A requested score was skipped (e.g. ``weighted_energy`` for a baseline without VOS)."""


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured.

    Attributes:
        metrics: ``{dataset: {score: {auroc, ap, fpr95, siou, ppv, f1, f1_threshold, best_f1,
            component_threshold, track, num_frames, ...}}}``; fractions in [0, 1], NaN where not computed.
        curves: ``{dataset: {score: {fpr, tpr, precision, recall, thresholds}}}`` numpy arrays.
        skipped: ``{score: reason}`` for requested (or default) scores that could not be computed.
    """

    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    curves: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _resolve_source(source: Any, vos_loss: nn.Module | None, device: Any):
    """(model or FolderScorer, vos_loss, config or None, num_classes or None, ignore_index) of a source."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            source = ScoreMapFolder(path)
        elif not path.is_file():
            raise FileNotFoundError(f"checkpoint or score-map folder {os.fspath(path)!r} does not exist")
        else:
            from ..engine.checkpoint import load_inference_model

            source = load_inference_model(path, device=device)
            device = None  # already there
    if isinstance(source, ScoreMapFolder):
        return FolderScorer(source), None, None, None, 255
    if isinstance(source, nn.Module):
        model, config, num_classes, ignore_index = source, None, None, 255
    elif hasattr(source, "model") and hasattr(source, "vos_loss"):  # engine.checkpoint.InferenceModel
        model, config = source.model, source.config
        num_classes, ignore_index = source.num_classes, source.ignore_index
        vos_loss = vos_loss if vos_loss is not None else source.vos_loss
    else:
        raise TypeError(
            "expected a checkpoint path, a score-map folder, an InferenceModel or an nn.Module, "
            f"got {type(source).__name__}"
        )
    if device is not None:
        model.to(device)
    if vos_loss is not None:
        vos_loss.to(model_device(model))
    return model, vos_loss, config, num_classes, ignore_index


def _choose_scores(requested, supports, explicit: bool, skipped: dict[str, str]) -> list[str]:
    names = []
    for name in requested:
        reason = supports(name)
        if reason is None:
            names.append(name)
            continue
        reason = skipped.setdefault(name, reason)  # keep a more specific reason recorded earlier
        if explicit:
            warnings.warn(f"skipping score {name!r}: {reason}", EvaluationWarning, stacklevel=3)
    if not names:
        raise ValueError(f"none of the scores {list(requested)} can be computed: {skipped}")
    return names


def _threshold_for(score: str, given: float | Mapping[str, float] | None, pixel: dict) -> float:
    if isinstance(given, Mapping):
        given = given.get(score)
    if given is not None:
        return float(given)
    return float(pixel.get("f1_threshold", math.nan))


def _component_metrics(track: str, threshold: float):
    from ..metrics import ComponentMetrics

    if track == "obstacle":
        return ComponentMetrics.obstacle_track(threshold)
    if track == "anomaly":
        return ComponentMetrics.anomaly_track(threshold)
    raise ValueError(f"component track must be 'anomaly' or 'obstacle', got {track!r}")


def evaluate(
    source: Any,
    datasets: Sequence[tuple[str, Any]],
    scores: Sequence[str] | None = None,
    *,
    vos_loss: nn.Module | None = None,
    sml: StandardizedMaxLogit | None = None,
    sml_max_images: int = 500,
    device: str | torch.device | None = None,
    batch_size: int = 1,
    mode: str = "whole",
    crop_size: tuple[int, int] = (512, 1024),
    stride: tuple[int, int] | None = None,
    scale: float = 1.0,
    amp: bool = False,
    component_threshold: float | Mapping[str, float] | None = None,
    component_tracks: Mapping[str, str] | None = None,
    submission_dir: str | os.PathLike | None = None,
    method_name: str = "vos_seg",
    max_memory_mb: float = 2048,
    workdir: str | os.PathLike | None = None,
    curve_points: int | None = 5000,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate anomaly scores on one or more road-anomaly datasets.

    Args:
        source: a checkpoint file (loaded with :func:`vos_seg.engine.checkpoint.load_inference_model`), an
            ``InferenceModel``, a plain segmentation ``nn.Module`` (pass ``vos_loss`` for the VOS scores), or a
            folder of saved score maps (:class:`vos_seg.evaluation.submission.ScoreMapFolder`: ``<frame_id>.npy`` files or
            the SegmentMeIfYouCan ``anomaly_p/<method>/<dataset>/<frame_id>.hdf5`` layout).
        datasets: ``(name, root)`` pairs read by :func:`vos_seg.data.benchmarks.open_anomaly_dataset`, or
            ``(name, frames)`` with any sequence of ``AnomalyFrame``.
        scores: names from :data:`vos_seg.scores.SCORE_NAMES` (for a folder: its method names). Default: all the
            source supports. A requested score the source cannot compute (``weighted_energy`` / ``vos_posterior``
            without a VOS loss, ``sml`` without fitting data) is skipped with an :class:`EvaluationWarning`.
        vos_loss: the trained ``VOSSegLoss`` when ``source`` is a plain module.
        sml: a fitted :class:`StandardizedMaxLogit`. Otherwise it is fitted on up to ``sml_max_images`` images of
            the training split named in the checkpoint's config (Jung et al. fit on training data); without such
            data ``sml`` is skipped.
        device: where to run; default: the checkpoint loader's choice (CUDA when present) or where the module is.
        batch_size: frames per forward pass (consecutive frames of equal size).
        mode, crop_size, stride, amp: whole-image or sliding-window inference (``predict_logits``).
        scale: resize factor for the images before inference; scores are computed at label resolution.
        component_threshold: score threshold of the component metrics, one for all scores or per score name;
            default the pixel F1-optimal threshold of each dataset and score.
        component_tracks: ``{dataset: "anomaly" | "obstacle"}`` overrides of :data:`COMPONENT_TRACKS`.
        submission_dir: also write every map in the SegmentMeIfYouCan layout, method ``<method_name>_<score>``.
        max_memory_mb: memory for the maps kept for the component pass; beyond it they go to a temporary folder.
        workdir: parent folder of that temporary folder (default the system's).
        curve_points: thin the ROC/PR curves to about this many thresholds (None: every distinct score bucket).
        progress: show tqdm progress bars.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        FileNotFoundError: a missing checkpoint, score-map folder, dataset root or score map (named).
        ValueError: unknown score names, an empty dataset, or bad labels/scores (from the metrics).
        TypeError: an unsupported ``source`` or dataset.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not datasets:
        raise ValueError("no datasets to evaluate")
    result = EvaluationResult()
    model, vos_loss, config, num_classes, ignore_index = _resolve_source(source, vos_loss, device)
    if isinstance(model, FolderScorer):
        scorer = model
        requested = list(scores) if scores is not None else scorer.folder.score_names
    else:
        if scores is not None:
            check_score_names(scores)
        requested = list(scores) if scores is not None else list(SCORE_NAMES)
        if sml is None and "sml" in requested:
            sml, reason = sml_from_config(
                model, config, num_classes, ignore_index, max_images=sml_max_images, mode=mode,
                crop_size=crop_size, amp=amp, progress=progress,
            )
            if sml is None:
                result.skipped["sml"] = reason
        scorer = ModelScorer(
            model, vos_loss=vos_loss, sml=sml, mode=mode, crop_size=crop_size, stride=stride, scale=scale, amp=amp
        )
    names = _choose_scores(requested, scorer.unsupported, scores is not None, result.skipped)
    writers = {}
    if submission_dir is not None:
        writers = {s: SubmissionWriter(submission_dir, f"{method_name}_{s}") for s in names}
    tracks = {**COMPONENT_TRACKS, **(component_tracks or {})}
    for name, root in datasets:
        track = tracks.get(name, "anomaly")
        _component_metrics(track, 0.0)  # an unknown track fails before inference
        result.metrics[name], result.curves[name] = _evaluate_dataset(
            name, open_frames(name, root), scorer, names, batch_size=batch_size, writers=writers, track=track,
            component_threshold=component_threshold, max_bytes=int(max_memory_mb * 2**20), workdir=workdir,
            curve_points=curve_points, progress=progress,
        )
    return result


def _evaluate_dataset(name, frames, scorer, names, *, batch_size, writers, track, component_threshold, max_bytes,
                      workdir, curve_points, progress):
    """Both passes over one dataset: pixel metrics while scoring, then component metrics from the kept maps."""
    from ..metrics import PixelMetrics

    if len(frames) == 0:
        raise ValueError(f"dataset {name!r} has no frames")
    pixel = {s: PixelMetrics(per_image=bool(getattr(frames, "per_image_metrics", False))) for s in names}
    with_model = isinstance(scorer, ModelScorer)
    metrics, curves = {}, {}
    with ScoreMapStore(max_bytes, workdir) as store:
        count = 0
        bar = tqdm(total=len(frames), desc=f"{name}: scoring", unit="frame", disable=not progress)
        for batch in frame_batches(name, frames, batch_size if with_model else 1, images=with_model):
            if with_model:
                maps = scorer([image for _, image, _ in batch], [labels.shape for _, _, labels in batch], names)
            else:
                maps = [scorer.read(name, frame_id, labels.shape, names) for frame_id, _, labels in batch]
            for (frame_id, _, labels), frame_maps in zip(batch, maps):
                labels = np.asarray(labels, dtype=np.uint8)
                store.put(("labels", count), labels)
                for s, value in frame_maps.items():
                    pixel[s].update(value, _like(labels, value))
                    half = _to_float16(value)
                    store.put((s, count), half)
                    if s in writers:
                        writers[s].write(name, frame_id, half)
                count += 1
            bar.update(len(batch))
        bar.close()
        for s in names:
            values = {k: _plain(v) for k, v in pixel[s].compute().items()}
            curves[s] = pixel[s].curves(max_points=curve_points)
            threshold = _threshold_for(s, component_threshold, values)
            values.update(siou=math.nan, ppv=math.nan, f1=math.nan)
            if math.isfinite(threshold):
                cm = _component_metrics(track, threshold)
                for i in tqdm(range(count), desc=f"{name}/{s}: components", unit="frame", disable=not progress):
                    cm.update(store.get((s, i)).astype(np.float32), store.get(("labels", i)))
                values.update({k: _plain(v) for k, v in cm.compute().items()})
            values.update(component_threshold=threshold, track=track, num_frames=count)
            metrics[s] = values
    return metrics, curves


def _like(labels: np.ndarray, value: Any) -> Any:
    """Labels on the device of a tensor score map, so that the metric update stays on that device."""
    if isinstance(value, torch.Tensor):
        return torch.from_numpy(labels).to(value.device)
    return labels


def _to_float16(value: Any) -> np.ndarray:
    """float16 copy on the host, clipped to float16's finite range (benchmark submissions are float16 too)."""
    if isinstance(value, torch.Tensor):
        return value.clamp(-_FLOAT16_MAX, _FLOAT16_MAX).to(torch.float16).cpu().numpy()
    return np.clip(value, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    return value
