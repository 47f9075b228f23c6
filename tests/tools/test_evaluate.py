"""tools/evaluate.py: outputs, table format and exit codes."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))  # the shared fixture writers
from test_evaluation import _labels, save_tiny_checkpoint, tiny_model, write_road_anomaly21  # noqa: E402

TOOL = Path(__file__).resolve().parents[2] / "tools" / "evaluate.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("evaluate_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool():
    return _load_tool()


@pytest.fixture
def ra21(tmp_path, rng):
    return write_road_anomaly21(tmp_path / "ra21", rng)


def test_score_maps_outputs(tmp_path, ra21, tool, capsys):
    maps = tmp_path / "perfect"
    maps.mkdir()
    for i in range(3):
        np.save(maps / f"validation{i:04d}.npy", (_labels(i) == 1).astype(np.float32))
    out = tmp_path / "out"
    code = tool.main(["--score-maps", str(maps), "--dataset", f"road_anomaly21={ra21}", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "| Dataset | Score | AUROC | AP | FPR95 | sIoU | PPV | mean F1 |"
    assert printed[2] == "| road_anomaly21 | perfect | 100.00 | 100.00 | 0.00 | 100.00 | 100.00 | 100.00 |"
    data = json.loads((out / "metrics.json").read_text())
    assert set(data) == {"road_anomaly21"} and set(data["road_anomaly21"]) == {"perfect"}
    assert {"auroc", "ap", "fpr95", "siou", "ppv", "f1"} <= set(data["road_anomaly21"]["perfect"])
    assert (out / "metrics.md").read_text().splitlines()[2] == printed[2]
    assert (out / "metrics.csv").read_text().splitlines()[1].startswith("road_anomaly21,perfect,1.0,1.0,0.0,1.0,1.0,1.0,")
    assert (out / "curves_road_anomaly21.png").stat().st_size > 0


def test_checkpoint_with_submission(tmp_path, ra21, tool, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "baseline.pt", tiny_model())
    out = tmp_path / "out"
    code = tool.main([
        "--checkpoint", str(ckpt), "--dataset", f"road_anomaly21={ra21}", "--scores", "energy", "weighted_energy",
        "--out", str(out), "--device", "cpu", "--batch-size", "2", "--mode", "slide", "--crop", "32", "32",
        "--component-threshold", "energy=-1.5", "--save-submission", str(tmp_path / "sub"), "--no-progress",
    ])
    assert code == 0
    captured = capsys.readouterr()
    assert "evaluate.py: warning: skipping score 'weighted_energy'" in captured.err
    data = json.loads((out / "metrics.json").read_text())
    assert list(data["road_anomaly21"]) == ["energy"]
    assert data["road_anomaly21"]["energy"]["component_threshold"] == -1.5
    assert len(list((tmp_path / "sub" / "anomaly_p" / "vos_seg_energy" / "AnomalyTrack-all").glob("*.hdf5"))) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "{tmp}/missing.pt", "--dataset", "road_anomaly21={tmp}"], "checkpoint '.*missing.pt' does not exist"),
        (["--score-maps", "{tmp}/nomaps", "--dataset", "road_anomaly21={tmp}"], "score-map folder '.*nomaps' does not exist"),
        (["--score-maps", "{tmp}", "--dataset", "road_anomaly21={tmp}/gone"], "dataset root '.*gone' for 'road_anomaly21' does not exist"),
        (["--score-maps", "{tmp}", "--dataset", "road_anomaly21"], "expected NAME=ROOT"),
        (["--checkpoint", "{tmp}/c.pt", "--dataset", "x={tmp}", "--scores", "energyy"], "unknown score\\(s\\) energyy"),
        (["--dataset", "x={tmp}"], "one of the arguments --checkpoint --score-maps is required"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, tool, capsys, args, message):
    (tmp_path / "c.pt").write_bytes(b"")
    with pytest.raises(SystemExit) as info:
        tool.main([a.format(tmp=tmp_path) for a in args])
    assert info.value.code == 2
    assert __import__("re").search(message, capsys.readouterr().err)


def test_evaluation_failure_exits_1(tmp_path, ra21, tool, capsys):
    (tmp_path / "maps").mkdir()
    code = tool.main(["--score-maps", str(tmp_path / "maps"), "--dataset", f"road_anomaly21={ra21}", "--no-progress",
                      "--out", str(tmp_path / "out")])
    assert code == 1
    assert "error: no score map for frame 'validation0000'" in capsys.readouterr().err


def test_process_exit_status(tmp_path):
    done = subprocess.run(
        [sys.executable, str(TOOL), "--checkpoint", str(tmp_path / "nope.pt"), "--dataset", f"synthetic={tmp_path}"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "checkpoint" in done.stderr and "does not exist" in done.stderr
