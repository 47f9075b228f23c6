"""tools/heatmap.py end to end on a tiny checkpoint: outputs, normalisation, bad inputs and exit codes."""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vos_seg.engine.checkpoint import save_checkpoint
from vos_seg.engine.heatmap_inputs import collect_images
from vos_seg.engine.model import build_model

TOOL = Path(__file__).resolve().parents[2] / "tools" / "heatmap.py"
H, W = 40, 64
GOOD = ("rgb", "gray", "rgba", "deep")


def _load_tool():
    spec = importlib.util.spec_from_file_location("heatmap_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint, good images in four pixel formats, a corrupt file and a list naming a missing one."""
    from vos_seg.data.synthetic import CLASS_NAMES

    root = tmp_path_factory.mktemp("heatmap")
    cfg = {"arch": "Unet", "encoder_name": "resnet18", "encoder_weights": None, "num_classes": len(CLASS_NAMES),
           "class_names": list(CLASS_NAMES), "options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}}
    model = build_model(cfg)
    save_checkpoint(root / "tiny.pt", {"config": {"model": cfg}, "model": model.state_dict(), "vos": None,
                                       "optimizer": None, "scheduler": None, "scaler": None, "rng": None,
                                       "iteration": 0, "best_metric": None})
    gen = np.random.default_rng(0)
    good = root / "good"
    good.mkdir()
    rgb = gen.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(good / "rgb.png"), rgb)
    cv2.imwrite(str(good / "gray.png"), rgb[..., 0])
    cv2.imwrite(str(good / "rgba.png"), np.dstack([rgb, np.full((H, W), 128, np.uint8)]))
    cv2.imwrite(str(good / "deep.png"), rgb.astype(np.uint16) * 257)
    assert cv2.imread(str(good / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(good / "rgba.png"), cv2.IMREAD_UNCHANGED).shape == (H, W, 4)
    (root / "broken.png").write_bytes(b"not a png at all")
    listing = root / "list.txt"
    listing.write_text("# frames\n" + "".join(f"good/{name}.png\n" for name in GOOD) + "broken.png\n\nmissing.png\n")
    (root / "empty").mkdir()
    return root


def _run(files, *args):
    return tool.main(["--checkpoint", str(files / "tiny.pt"), "--no-progress", *map(str, args)])


def test_bad_inputs_are_named_and_the_run_continues(files, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(files, "--images", files / "list.txt", "--out", out, "--views", "overlay", "panel",
                "--range", -5, 0, "--save-npy", "--threshold", -2.5)
    captured = capsys.readouterr()
    assert code == 1
    assert "2 image(s) failed" in captured.err
    assert "broken.png" in captured.err and "missing.png" in captured.err and "does not exist" in captured.err
    assert "rendered 4/6 images" in captured.out
    for name in GOOD:  # grayscale, RGBA and 16-bit frames were converted and rendered
        for view in ("overlay", "panel"):
            png = cv2.imread(str(out / "energy" / view / f"{name}.png"))
            assert png is not None and png.ndim == 3 and png.shape[0] > H, (name, view)
        score = np.load(out / "energy" / "npy" / f"{name}.npy")
        assert score.dtype == np.float32 and score.shape == (H, W) and np.isfinite(score).all()
    assert not (out / "energy" / "panel" / "broken.png").exists()
    assert json.loads((out / "energy" / "normalizer.json").read_text())["vmin"] == -5.0


def test_shared_percentiles_match_the_saved_maps(files, tmp_path, capsys):
    code = _run(files, "--images", files / "good", "--out", tmp_path, "--scores", "energy", "msp", "--views",
                "--percentiles", 5, 95, "--save-npy", "--batch-size", 3)
    assert code == 0, capsys.readouterr().err
    for score in ("energy", "msp"):
        pooled = np.concatenate([np.load(tmp_path / score / "npy" / f"{n}.npy").ravel() for n in GOOD])
        summary = json.loads((tmp_path / score / "normalizer.json").read_text())
        expected = np.percentile(pooled.astype(np.float64), [5, 95])
        got = np.array([summary["vmin"], summary["vmax"]])
        assert np.abs(got - expected).max() < 1e-9, f"max diff {np.abs(got - expected).max()}"
        assert summary["mode"] == "percentiles" and summary["num_samples"] == 4 * H * W
    assert not list(tmp_path.glob(".cache-*")), "the temporary score cache was left behind"


def test_rendering_is_deterministic(files, tmp_path, capsys):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        code = _run(files, "--images", files / "good" / "rgb.png", files / "good" / "deep.png", "--out", out)
        assert code == 0, capsys.readouterr().err
    for name in ("rgb", "deep"):
        first = (runs[0] / "energy" / "panel" / f"{name}.png").read_bytes()
        assert first == (runs[1] / "energy" / "panel" / f"{name}.png").read_bytes(), name


def test_empty_input_set_is_an_error_naming_what_was_searched(files, tmp_path, capsys):
    assert _run(files, "--images", files / "empty", "--out", tmp_path) == 2
    err = capsys.readouterr().err
    assert "no input images found" in err and "folder" in err and "empty" in err
    assert _run(files, "--images", str(files / "nothing-*.png"), "--out", tmp_path) == 2
    assert "glob" in capsys.readouterr().err


def test_dataset_calibrated_threshold_and_submission(files, tmp_path, capsys):
    from vos_seg.data.benchmarks import open_anomaly_dataset
    from vos_seg.data.synthetic import generate_world
    from vos_seg.evaluation.submission import read_score_map

    world = tmp_path / "world"
    generate_world(world, num_train=1, num_val=1, num_anomaly=2, height=64, width=96, seed=0)
    out, sub = tmp_path / "out", tmp_path / "smiyc"
    code = _run(files, "--dataset", "synthetic", "--root", world, "--out", out, "--save-npy",
                "--submission", sub, "--views", "panel")
    assert code == 0, capsys.readouterr().err
    dataset = open_anomaly_dataset("synthetic", world)
    scores = [np.load(out / "energy" / "npy" / f"{fid}.npy") for fid in dataset.frame_ids]
    labels = [dataset[i].labels for i in range(len(dataset))]
    inlier = np.concatenate([s[lab == 0] for s, lab in zip(scores, labels)]).astype(np.float64)
    summary = json.loads((out / "energy" / "normalizer.json").read_text())
    assert summary["mode"] == "calibrated"  # the default when labels exist
    assert summary["threshold"] == pytest.approx(np.quantile(inlier, 0.95), abs=1e-9)
    for fid, score in zip(dataset.frame_ids, scores):
        assert (out / "energy" / "panel" / f"{fid}.png").is_file()
        written = read_score_map(next(sub.rglob(f"{fid}.hdf5")))
        np.testing.assert_allclose(written, score, rtol=1e-3, atol=1e-3)


def test_calibrate_without_labels_is_a_usage_error(files, tmp_path, capsys):
    assert _run(files, "--images", files / "good", "--out", tmp_path, "--calibrate") == 2
    assert "needs anomaly labels" in capsys.readouterr().err


def test_vos_scores_need_a_vos_checkpoint(files, tmp_path, capsys):
    from vos_seg.engine.checkpoint import load_checkpoint
    from vos_seg.loss import VOSSegLoss

    assert _run(files, "--images", files / "good", "--out", tmp_path, "--scores", "vos_posterior") == 2
    assert "need a checkpoint trained with the VOS plugin" in capsys.readouterr().err
    state = load_checkpoint(files / "tiny.pt")
    loss = VOSSegLoss(state["config"]["model"]["num_classes"])
    state["vos"] = {f"loss.{k}": v for k, v in loss.state_dict().items()}
    save_checkpoint(tmp_path / "vos.pt", state)
    code = tool.main(["--checkpoint", str(tmp_path / "vos.pt"), "--no-progress", "--images", str(files / "good"),
                      "--out", str(tmp_path / "out"), "--scores", "vos_posterior", "weighted_energy", "--views",
                      "--save-npy"])
    assert code == 0, capsys.readouterr().err
    posterior = np.load(tmp_path / "out" / "vos_posterior" / "npy" / "rgb.npy")
    assert posterior.shape == (H, W) and posterior.min() >= 0 and posterior.max() <= 1


def test_scaled_sliding_window_maps_come_back_at_full_resolution(files, tmp_path):
    code = _run(files, "--images", files / "good" / "rgb.png", "--out", tmp_path, "--views", "map", "--plain",
                "--save-npy", "--scale", 0.5, "--mode", "slide", "--crop", 16, 16, "--per-image", "--flat")
    assert code == 0
    bare = cv2.imread(str(tmp_path / "rgb_energy_map.png"))  # --flat naming; --plain: exactly H x W
    assert bare is not None and bare.shape == (H, W, 3)
    score = np.load(tmp_path / "energy" / "npy" / "rgb.npy")
    assert score.shape == (H, W) and score.dtype == np.float32
    assert json.loads((tmp_path / "energy" / "normalizer.json").read_text())["mode"] == "per_image"


def test_threshold_count_must_match_scores(files, tmp_path):
    with pytest.raises(SystemExit) as exc:
        _run(files, "--images", files / "good", "--out", tmp_path, "--scores", "energy", "msp",
             "--threshold", 1, 2, 3)
    assert exc.value.code == 2


def test_collect_images_specs(files, tmp_path):
    inputs = collect_images([files / "list.txt"])
    assert [i.frame_id for i in inputs] == [*GOOD, "broken", "missing"]
    assert inputs[-1].source == str(files / "missing.png")  # relative to the list file
    image, labels = inputs[1].load()
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and labels is None
    globbed = collect_images([str(files / "good" / "r*.png")])
    assert [i.frame_id for i in globbed] == ["rgb", "rgba"]
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for folder in ("x", "y"):
        cv2.imwrite(str(tmp_path / folder / "same.png"), np.zeros((4, 4, 3), np.uint8))
    assert [i.frame_id for i in collect_images([tmp_path])] == ["x__same", "y__same"]
    with pytest.raises(ValueError, match="no input images found; searched glob"):
        collect_images([str(tmp_path / "*.jpg")])
    with pytest.raises(FileNotFoundError, match="image list file .*nope.txt.* does not exist"):
        collect_images([tmp_path / "nope.txt"])
