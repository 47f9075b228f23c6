"""Where the evaluation loop gets its score maps, and where it keeps them between its two passes.

* :class:`ModelScorer`: runs a segmentation model once per batch of frames and computes every requested score
  from the same logits (:func:`vos_seg.scores.compute_scores`).
* :class:`FolderScorer`: reads saved maps (:class:`vos_seg.evaluation.submission.ScoreMapFolder`).
* :func:`open_frames` / :func:`frame_batches`: the frames of a dataset, batched by image size.
* :func:`fit_sml`: fits :class:`vos_seg.scores.StandardizedMaxLogit` on in-distribution images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..scores import SCORE_NAMES, StandardizedMaxLogit, compute_scores
from .submission import ScoreMapFolder

__all__ = ["ModelScorer", "FolderScorer", "open_frames", "frame_batches", "fit_sml", "model_device", "check_score_names"]

VOS_SCORES = ("weighted_energy", "vos_posterior")


def model_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


class ModelScorer:
    """Score frames with a model: one forward pass per batch, every score from the same logits.

    Args:
        model: segmentation network mapping normalised images ``(N, 3, H, W)`` to logits ``(N, C, H, W)``.
        vos_loss: the trained ``VOSSegLoss`` (needed by ``weighted_energy`` and ``vos_posterior``) or None.
        sml: a fitted :class:`StandardizedMaxLogit` (needed by ``sml``) or None.
        mode, crop_size, stride, amp: passed to :func:`vos_seg.engine.inference.predict_logits`.
        scale: the image is resized by this factor before inference (``preprocess``); the logits are brought back
            to the label resolution bilinearly before scoring.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        vos_loss: nn.Module | None = None,
        sml: StandardizedMaxLogit | None = None,
        mode: str = "whole",
        crop_size: tuple[int, int] = (512, 1024),
        stride: tuple[int, int] | None = None,
        scale: float = 1.0,
        amp: bool = False,
    ) -> None:
        self.model = model.eval()
        self.vos_loss = vos_loss.eval() if vos_loss is not None else None
        self.sml = sml
        self.mode, self.crop_size, self.stride, self.scale, self.amp = mode, tuple(crop_size), stride, scale, amp
        self.device = model_device(model)

    def unsupported(self, name: str) -> str | None:
        """Why this scorer cannot compute ``name`` (None when it can)."""
        if name in VOS_SCORES and self.vos_loss is None:
            return f"'{name}' needs the trained VOS loss, and this model has none (a baseline trained without VOS)"
        if name == "sml" and self.sml is None:
            return "'sml' needs a StandardizedMaxLogit fitted on in-distribution data, and none is available"
        return None

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray], label_shapes: Sequence[tuple[int, int]], names: Sequence[str]):
        """Score a batch of same-sized uint8 RGB images ``(H, W, 3)``.

        Returns:
            One ``{name: float32 (H, W) tensor on the model's device}`` per image.
        """
        from ..engine.inference import predict_logits, preprocess

        batch = torch.stack([preprocess(image, scale=self.scale) for image in images]).to(self.device)
        logits = predict_logits(
            self.model, batch, mode=self.mode, crop_size=self.crop_size, stride=self.stride, amp=self.amp
        ).float()
        out = []
        for i, shape in enumerate(label_shapes):
            frame_logits = logits[i : i + 1]
            if tuple(frame_logits.shape[-2:]) != tuple(shape):
                frame_logits = F.interpolate(frame_logits, size=tuple(shape), mode="bilinear", align_corners=False)
            maps = compute_scores(frame_logits, names, vos_loss=self.vos_loss, sml=self.sml)
            out.append({name: value[0] for name, value in maps.items()})
        return out


class FolderScorer:
    """Score frames by reading saved maps (``.npy`` or SegmentMeIfYouCan ``.hdf5``), resized to the labels.

    A map of another size than the labels is resized bilinearly, as the benchmark code does for smaller maps.
    """

    def __init__(self, folder: ScoreMapFolder) -> None:
        self.folder = folder

    def unsupported(self, name: str) -> str | None:
        if name not in self.folder.score_names:
            return f"no maps for '{name}' in {self.folder.root} (found: {', '.join(self.folder.score_names)})"
        return None

    def read(self, dataset_name: str, frame_id: str, shape: tuple[int, int], names: Sequence[str]):
        import cv2

        out = {}
        for name in names:
            value = self.folder.read(name, dataset_name, frame_id)
            if value.shape != tuple(shape):
                value = cv2.resize(value, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
            out[name] = value
        return out


def open_frames(name: str, root: Any):
    """A dataset's frames: ``open_anomaly_dataset(name, root)`` for a folder, or a given frame sequence.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        TypeError: ``root`` is neither a path nor a sequence.
    """
    if isinstance(root, (str, os.PathLike)):
        if not Path(root).exists():
            raise FileNotFoundError(f"dataset root {os.fspath(root)!r} for {name!r} does not exist")
        from ..data.benchmarks import open_anomaly_dataset

        return open_anomaly_dataset(name, root)
    if not hasattr(root, "__len__") or not hasattr(root, "__getitem__"):
        raise TypeError(f"dataset {name!r}: expected a root folder or a sequence of frames, got {type(root).__name__}")
    return root


def frame_batches(name: str, frames: Sequence, batch_size: int, *, images: bool = True) -> Iterator[list[tuple]]:
    """Lists of ``(frame_id, image or None, labels)``: consecutive frames of equal image size, ``batch_size`` at most.

    With ``images=False`` and a reader offering ``read_labels``/``frame_ids`` (``AnomalyDataset``), images are not
    decoded at all (evaluating saved score maps needs labels only).

    Raises:
        ValueError: a frame without labels (evaluation needs them).
    """
    light = not images and hasattr(frames, "read_labels") and hasattr(frames, "frame_ids")
    ids = frames.frame_ids if light else None
    batch: list[tuple] = []
    for i in range(len(frames)):
        if light:
            item = (ids[i], None, frames.read_labels(i))
        else:
            frame = frames[i]
            item = (frame.frame_id, frame.image if images else None, frame.labels)
        if item[2] is None:
            raise ValueError(f"frame {item[0]!r} of dataset {name!r} has no labels; evaluation needs them")
        same_size = not batch or item[1] is None or batch[0][1].shape == item[1].shape
        if batch and (len(batch) == batch_size or not same_size):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


@torch.inference_mode()
def fit_sml(
    model: nn.Module,
    samples: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    num_classes: int,
    *,
    ignore_index: int = 255,
    mode: str = "whole",
    crop_size: tuple[int, int] = (512, 1024),
    amp: bool = False,
) -> StandardizedMaxLogit:
    """Fit the standardized max logit (Jung et al., ICCV 2021) on in-distribution images.

    As in the paper, the per-class mean and standard deviation of the max logit are taken over the pixels
    *predicted* as each class on training data; pixels whose target is ``ignore_index`` (void, padding) or
    negative (outlier exposure) are left out.

    Args:
        model: the segmentation network (its device is used).
        samples: ``(image float32 (3, H, W) normalised, target int (H, W) or None)`` pairs, e.g. a training
            reader's items.
        num_classes: ``C``.

    Returns:
        The fitted :class:`StandardizedMaxLogit` (on the model's device).

    Raises:
        ValueError: ``samples`` is empty.
    """
    from ..engine.inference import predict_logits

    device = model_device(model)
    sml = StandardizedMaxLogit(num_classes).to(device)
    seen = 0
    for image, target in samples:
        logits = predict_logits(model, image.unsqueeze(0).to(device), mode=mode, crop_size=crop_size, amp=amp)
        valid = None
        if target is not None:
            target = torch.as_tensor(target).to(device).unsqueeze(0)
            valid = (target >= 0) & (target != ignore_index)
        sml.fit(logits.float(), valid)
        seen += 1
    if seen == 0:
        raise ValueError("fit_sml got no in-distribution samples")
    return sml


def check_score_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in SCORE_NAMES]
    if unknown:
        raise ValueError(f"unknown score(s) {', '.join(map(repr, unknown))}; choose from {', '.join(SCORE_NAMES)}")
