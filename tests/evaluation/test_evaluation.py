"""The evaluation loop (vos_seg.evaluation) on tiny fixtures: known metrics, sklearn references, skipping rules."""

import json
import math

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from vos_seg.data.benchmarks_base import AnomalyFrame
from vos_seg.engine.checkpoint import save_checkpoint
from vos_seg.engine.inference import preprocess
from vos_seg.engine.model import build_model
from vos_seg.evaluation import EvaluationWarning, evaluate
from vos_seg.evaluation.report import markdown_table, plot_curves, write_csv, write_json
from vos_seg.evaluation.store import ScoreMapStore
from vos_seg.loss import VOSSegLoss
from vos_seg.scores import StandardizedMaxLogit, energy

SIZE = 64
MODEL_CFG = {
    "arch": "Unet", "encoder_name": "resnet18", "encoder_weights": None, "num_classes": 3,
    "class_names": ["road", "car", "sky"], "options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
}


def _labels(index: int, side: int = 30) -> np.ndarray:
    labels = np.zeros((SIZE, SIZE), np.uint8)
    labels[:4] = 255  # a void band
    y, x = 10 + 3 * index, 12 + 2 * index
    labels[y : y + side, x : x + side] = 1  # 900 px: one component for both tracks' size limits
    return labels


def _image(rng, labels):
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    image[labels == 1] = (255, 0, 255)
    return image


def write_road_anomaly21(root, rng, n=3, side=30):
    (root / "images").mkdir(parents=True)
    (root / "labels_masks").mkdir()
    for i in range(n):
        labels = _labels(i, side)
        cv2.imwrite(str(root / "images" / f"validation{i:04d}.png"), _image(rng, labels)[..., ::-1])
        cv2.imwrite(str(root / "labels_masks" / f"validation{i:04d}_labels_semantic.png"), labels)
    return root


def tiny_model():
    torch.manual_seed(0)  # the test's own weights; nothing in vos_seg seeds behind the user
    return build_model(MODEL_CFG).eval()


def save_tiny_checkpoint(path, model, *, vos_state=None, data=None):
    config = {"model": MODEL_CFG, "data": data or {"root": "", "dataset": "synthetic", "ignore_index": 255}}
    save_checkpoint(path, {
        "config": config, "model": model.state_dict(), "vos": vos_state, "optimizer": None, "scheduler": None,
        "scaler": None, "rng": None, "iteration": 0, "best_metric": None,
    })
    return path


@pytest.fixture
def ra21(tmp_path, rng):
    return write_road_anomaly21(tmp_path / "RoadAnomaly21", rng)


def test_perfect_score_maps_give_perfect_metrics(tmp_path, ra21):
    maps = tmp_path / "perfect"
    maps.mkdir()
    for i in range(3):
        labels = _labels(i)
        np.save(maps / f"validation{i:04d}.npy", np.where(labels == 255, 0.5, labels == 1).astype(np.float32))
    result = evaluate(maps, [("road_anomaly21", ra21)], progress=False)
    m = result.metrics["road_anomaly21"]["perfect"]
    assert (m["auroc"], m["ap"], m["fpr95"]) == (1.0, 1.0, 0.0)
    assert (m["siou"], m["ppv"], m["f1"]) == (1.0, 1.0, 1.0), m
    assert m["num_anomaly"] == 3 * 900 and m["num_inlier"] == 3 * (SIZE * (SIZE - 4) - 900)
    assert m["track"] == "anomaly" and m["num_frames"] == 3


def test_random_score_maps_match_sklearn_pooled(tmp_path, ra21, rng):
    maps = tmp_path / "noisy"
    maps.mkdir()
    pooled_s, pooled_y = [], []
    for i in range(3):
        labels = _labels(i)
        score = (rng.normal(size=labels.shape) + 1.5 * (labels == 1)).astype(np.float32)
        np.save(maps / f"validation{i:04d}.npy", score)
        keep = labels != 255
        pooled_s.append(score[keep])
        pooled_y.append(labels[keep])
    s, y = np.concatenate(pooled_s), np.concatenate(pooled_y)
    m = evaluate(maps, [("road_anomaly21", ra21)], progress=False).metrics["road_anomaly21"]["noisy"]
    ref_auroc, ref_ap = roc_auc_score(y, s), average_precision_score(y, s)
    assert abs(m["auroc"] - ref_auroc) < 1e-4, (m["auroc"], ref_auroc)
    assert abs(m["ap"] - ref_ap) < 1e-4, (m["ap"], ref_ap)


class _PerImageFrames(list):
    per_image_metrics = True  # what the street_hazards reader sets


def test_per_image_datasets_average_over_images(tmp_path, rng):
    frames = _PerImageFrames(AnomalyFrame(f"f{i}", _image(rng, _labels(i)), _labels(i)) for i in range(3))
    maps = tmp_path / "m"
    maps.mkdir()
    references = []
    for i, f in enumerate(frames):
        score = (rng.normal(size=f.labels.shape) + (i + 0.5) * (f.labels == 1)).astype(np.float32)
        np.save(maps / f"{f.frame_id}.npy", score)
        keep = f.labels != 255
        references.append(roc_auc_score(f.labels[keep], score[keep]))
    m = evaluate(maps, [("street_hazards", frames)], progress=False).metrics["street_hazards"]["m"]
    assert abs(m["auroc"] - np.mean(references)) < 1e-6, (m["auroc"], references)
    assert m["num_images"] == 3


def test_component_tracks_follow_the_benchmark(tmp_path, rng):
    # A perfectly scored 20x20 obstacle: the AnomalyTrack preset drops predicted components under 500 px,
    # the ObstacleTrack preset (50 px) keeps it.
    frames = []
    for i in range(2):
        labels = _labels(i, side=20)
        frames.append(AnomalyFrame(f"f{i}", _image(rng, labels), labels))
    maps = tmp_path / "m"
    maps.mkdir()
    for f in frames:
        np.save(maps / f"{f.frame_id}.npy", (f.labels == 1).astype(np.float32))
    result = evaluate(maps, [("road_obstacle21", frames), ("road_anomaly21", frames)], progress=False)
    obstacle, anomaly = result.metrics["road_obstacle21"]["m"], result.metrics["road_anomaly21"]["m"]
    assert obstacle["track"] == "obstacle" and (obstacle["siou"], obstacle["f1"]) == (1.0, 1.0)
    assert anomaly["track"] == "anomaly" and (anomaly["siou"], anomaly["f1"]) == (0.0, 0.0)
    forced = evaluate(maps, [("x", frames)], component_tracks={"x": "obstacle"}, progress=False)
    assert forced.metrics["x"]["m"]["f1"] == 1.0


def test_model_runs_once_per_batch_and_matches_reference(tmp_path, ra21):
    model = tiny_model()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    scores = ["energy", "msp", "max_logit", "entropy"]
    result = evaluate(model, [("road_anomaly21", ra21)], scores, batch_size=2, progress=False)
    assert len(calls) == 2  # 3 frames of one size in batches of 2, all four scores from the same logits
    assert list(result.metrics["road_anomaly21"]) == scores
    pooled_s, pooled_y = [], []
    from vos_seg.data.benchmarks import open_anomaly_dataset

    with torch.no_grad():
        for frame in open_anomaly_dataset("road_anomaly21", ra21):
            e = energy(model(preprocess(frame.image)[None]))[0].numpy()
            keep = frame.labels != 255
            pooled_s.append(e[keep])
            pooled_y.append(frame.labels[keep])
    ref = roc_auc_score(np.concatenate(pooled_y), np.concatenate(pooled_s))
    got = result.metrics["road_anomaly21"]["energy"]["auroc"]
    assert abs(got - ref) < 1e-4, (got, ref)
    curves = result.curves["road_anomaly21"]["energy"]
    assert set(curves) >= {"fpr", "tpr", "precision", "recall", "thresholds"}


def test_scale_scores_at_label_resolution_and_disk_spill(tmp_path, ra21):
    model = tiny_model()
    in_memory = evaluate(model, [("road_anomaly21", ra21)], ["energy"], scale=0.5, progress=False)
    on_disk = evaluate(model, [("road_anomaly21", ra21)], ["energy"], scale=0.5, max_memory_mb=0,
                       workdir=tmp_path / "work", progress=False)
    m = in_memory.metrics["road_anomaly21"]["energy"]
    assert m["num_anomaly"] + m["num_inlier"] == 3 * SIZE * (SIZE - 4)
    assert on_disk.metrics == in_memory.metrics
    assert list((tmp_path / "work").iterdir()) == []  # the temporary folder is gone


def test_baseline_checkpoint_skips_vos_scores(tmp_path, ra21):
    path = save_tiny_checkpoint(tmp_path / "baseline.pt", tiny_model())
    with pytest.warns(EvaluationWarning, match="skipping score 'weighted_energy'.*baseline trained without VOS"):
        result = evaluate(path, [("road_anomaly21", ra21)], ["energy", "weighted_energy"], device="cpu",
                          progress=False)
    assert list(result.metrics["road_anomaly21"]) == ["energy"]
    assert "weighted_energy" in result.skipped
    default = evaluate(path, [("road_anomaly21", ra21)], device="cpu", progress=False)  # no warning needed
    assert list(default.metrics["road_anomaly21"]) == ["energy", "msp", "max_logit", "entropy"]
    assert set(default.skipped) == {"weighted_energy", "vos_posterior", "sml"}


def test_vos_checkpoint_scores_and_sml_from_training_data(tmp_path, ra21, rng):
    train = tmp_path / "world"
    (train / "leftImg8bit/train/synth").mkdir(parents=True)
    (train / "gtFine/train/synth").mkdir(parents=True)
    for i in range(2):
        target = rng.integers(0, 3, (SIZE, SIZE), dtype=np.uint8)
        target[:8] = 255
        cv2.imwrite(str(train / f"leftImg8bit/train/synth/t{i}_leftImg8bit.png"), rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        cv2.imwrite(str(train / f"gtFine/train/synth/t{i}_gtFine_labelTrainIds.png"), target)
    model = tiny_model()
    loss = VOSSegLoss(3)
    path = save_tiny_checkpoint(
        tmp_path / "vos.pt", model, vos_state={f"loss.{k}": v for k, v in loss.state_dict().items()},
        data={"root": str(train), "dataset": "synthetic", "train_split": "train", "ignore_index": 255},
    )
    result = evaluate(path, [("road_anomaly21", ra21)], ["weighted_energy", "vos_posterior", "sml"], device="cpu",
                      progress=False)
    assert list(result.metrics["road_anomaly21"]) == ["weighted_energy", "vos_posterior", "sml"]
    # reference SML: fitted by hand on the two training images (void rows left out)
    from vos_seg.data.cityscapes import CityscapesSegmentation
    from vos_seg.data.benchmarks import open_anomaly_dataset

    sml = StandardizedMaxLogit(3)
    pooled_s, pooled_y = [], []
    with torch.no_grad():
        for image, target in CityscapesSegmentation(train, "train", num_classes=3):
            sml.fit(model(image[None]), (target != 255)[None])
        for frame in open_anomaly_dataset("road_anomaly21", ra21):
            keep = frame.labels != 255
            pooled_s.append(sml(model(preprocess(frame.image)[None]))[0].numpy()[keep])
            pooled_y.append(frame.labels[keep])
    ref = roc_auc_score(np.concatenate(pooled_y), np.concatenate(pooled_s))
    got = result.metrics["road_anomaly21"]["sml"]["auroc"]
    assert abs(got - ref) < 1e-4, (got, ref)


def test_sml_without_training_data_is_skipped(tmp_path, ra21):
    path = save_tiny_checkpoint(tmp_path / "b.pt", tiny_model(), data={"root": str(tmp_path / "gone")})
    with pytest.warns(EvaluationWarning, match="skipping score 'sml'.*training data folder .*gone.* does not exist"):
        result = evaluate(path, [("road_anomaly21", ra21)], ["energy", "sml"], device="cpu", progress=False)
    assert list(result.metrics["road_anomaly21"]) == ["energy"]
    with pytest.warns(EvaluationWarning, match="pass a fitted StandardizedMaxLogit"):
        evaluate(tiny_model(), [("road_anomaly21", ra21)], ["energy", "sml"], progress=False)


def test_submission_round_trip_and_fixed_threshold(tmp_path, ra21):
    model = tiny_model()
    first = evaluate(model, [("road_anomaly21", ra21)], ["energy", "msp"], submission_dir=tmp_path / "sub",
                     component_threshold={"msp": 0.5}, progress=False)
    files = sorted(p.relative_to(tmp_path / "sub").as_posix() for p in (tmp_path / "sub").rglob("*.hdf5"))
    assert files[0] == "anomaly_p/vos_seg_energy/AnomalyTrack-all/validation0000.hdf5" and len(files) == 6
    again = evaluate(tmp_path / "sub", [("road_anomaly21", ra21)], component_threshold={"vos_seg_msp": 0.5},
                     progress=False)
    a, b = first.metrics["road_anomaly21"]["msp"], again.metrics["road_anomaly21"]["vos_seg_msp"]
    assert a["component_threshold"] == b["component_threshold"] == 0.5
    assert (a["siou"], a["ppv"], a["f1"]) == (b["siou"], b["ppv"], b["f1"])  # both passes threshold float16 maps
    assert abs(a["auroc"] - b["auroc"]) < 1e-2
    e = first.metrics["road_anomaly21"]["energy"]
    assert e["component_threshold"] == e["f1_threshold"]  # default: the pixel F1-optimal threshold


def test_errors(tmp_path, ra21):
    with pytest.raises(FileNotFoundError, match="dataset root .*nowhere.* for 'road_anomaly21' does not exist"):
        evaluate(tiny_model(), [("road_anomaly21", tmp_path / "nowhere")], ["energy"], progress=False)
    with pytest.raises(FileNotFoundError, match="checkpoint or score-map folder .*missing.pt.* does not exist"):
        evaluate(tmp_path / "missing.pt", [("road_anomaly21", ra21)], progress=False)
    with pytest.raises(ValueError, match="unknown score\\(s\\) 'energyy'"):
        evaluate(tiny_model(), [("road_anomaly21", ra21)], ["energyy"], progress=False)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        evaluate(tiny_model(), [("road_anomaly21", ra21)], batch_size=0, progress=False)
    empty = tmp_path / "empty_maps"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no score map for frame 'validation0000'"):
        evaluate(empty, [("road_anomaly21", ra21)], progress=False)
    with pytest.raises(ValueError, match="component track must be 'anomaly' or 'obstacle', got 'lane'"):
        evaluate(empty, [("road_anomaly21", ra21)], component_tracks={"road_anomaly21": "lane"}, progress=False)


def test_store_spills_to_disk_beyond_its_budget(tmp_path):
    a, b = np.arange(6, dtype=np.float16).reshape(2, 3), np.ones((4, 4), np.uint8)
    with ScoreMapStore(max_bytes=20, workdir=tmp_path) as store:
        store.put("a", a)
        assert not store.on_disk
        store.put("b", b)  # 12 + 16 bytes > 20: everything moves to disk
        assert store.on_disk and len(list(tmp_path.glob("*/*.npy"))) == 2
        np.testing.assert_array_equal(store.get("a"), a)
        np.testing.assert_array_equal(store.get("b"), b)
        with pytest.raises(ValueError, match="key 'a' is already stored"):
            store.put("a", a)
    assert list(tmp_path.iterdir()) == []


def test_report_formats(tmp_path):
    metrics = {"road_anomaly21": {"energy": {"auroc": 0.9, "ap": 0.5, "fpr95": 0.25, "siou": math.nan, "ppv": 0.125,
                                              "f1": 0.0, "num_anomaly": 10, "num_inlier": 30, "track": "anomaly"}}}
    table = markdown_table(metrics).splitlines()
    assert table[0] == "| Dataset | Score | AUROC | AP | FPR95 | sIoU | PPV | mean F1 |"
    assert table[2] == "| road_anomaly21 | energy | 90.00 | 50.00 | 25.00 | n/a | 12.50 | 0.00 |"
    data = json.loads(write_json(metrics, tmp_path / "m.json").read_text())
    assert data["road_anomaly21"]["energy"]["siou"] is None and data["road_anomaly21"]["energy"]["auroc"] == 0.9
    rows = write_csv(metrics, tmp_path / "m.csv").read_text().splitlines()
    assert rows[0].startswith("dataset,score,auroc,ap,fpr95,siou,ppv,f1,")
    assert rows[1].startswith("road_anomaly21,energy,0.9,0.5,0.25,,0.125,0.0,")
    curves = {"road_anomaly21": {"energy": {"fpr": np.linspace(0, 1, 5), "tpr": np.linspace(0, 1, 5) ** 0.5,
                                            "recall": np.linspace(0, 1, 5), "precision": np.linspace(1, 0.25, 5)}}}
    (png,) = plot_curves(curves, metrics, tmp_path / "plots")
    assert png.name == "curves_road_anomaly21.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
