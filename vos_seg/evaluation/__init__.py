"""Road-anomaly benchmark evaluation: score a model (or saved score maps) on benchmark folders.

* :func:`evaluate`: one inference pass per frame, every requested score from the same logits, pixel metrics
  streamed, component metrics at each score's pixel F1-optimal threshold -> :class:`EvaluationResult`.
* :mod:`~vos_seg.evaluation.report`: Markdown table, JSON, CSV and ROC/PR curve plots.
* :mod:`~vos_seg.evaluation.submission`: the SegmentMeIfYouCan submission layout (float16 HDF5 per frame).
"""

from .evaluate import COMPONENT_TRACKS, EvaluationResult, EvaluationWarning, evaluate
from .report import markdown_table, plot_curves, write_csv, write_json
from .submission import ScoreMapFolder, SubmissionWriter, read_score_map, write_score_map

__all__ = [
    "COMPONENT_TRACKS",
    "EvaluationResult",
    "EvaluationWarning",
    "evaluate",
    "markdown_table",
    "plot_curves",
    "write_csv",
    "write_json",
    "ScoreMapFolder",
    "SubmissionWriter",
    "read_score_map",
    "write_score_map",
]
