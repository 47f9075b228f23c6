# vos-seg: `make demo` (train, evaluate, render on the synthetic road world) and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1

DEMO_WORLD ?= data/synthetic
DEMO_RUN ?= runs/demo
DEMO_SCORES := energy weighted_energy vos_posterior msp max_logit entropy

.PHONY: install test demo demo-baseline benchmark gpu-check clean

# Quiet and idempotent: pip only does work when something is missing or pyproject.toml changed.
.stamp-install: pyproject.toml
	$(PIP) install -q -e '.[dev]'
	@touch $@

install: .stamp-install

test: .stamp-install
	$(PYTHON) -m pytest -q

benchmark: .stamp-install
	$(PYTHON) tools/benchmark.py

# The synthetic world (skipped when it exists), VOS training, evaluation and heatmaps of the anomaly split.
demo: .stamp-install
	$(PYTHON) tools/make_synthetic.py --out $(DEMO_WORLD) --outlier-exposure --workers 2
	$(PYTHON) tools/train.py --config configs/demo.yaml --set run.output_dir=$(DEMO_RUN) --set run.progress=false
	$(PYTHON) tools/evaluate.py --checkpoint $(DEMO_RUN)/last.pt --dataset synthetic=$(DEMO_WORLD) \
		--scores $(DEMO_SCORES) --out $(DEMO_RUN) --no-progress
	$(PYTHON) tools/heatmap.py --checkpoint $(DEMO_RUN)/last.pt --dataset synthetic --root $(DEMO_WORLD) \
		--scores energy --views panel --flat --out $(DEMO_RUN)/heatmaps --no-progress
	@echo; echo "== $(DEMO_RUN)/metrics.md (heatmaps: $(DEMO_RUN)/heatmaps/)"; cat $(DEMO_RUN)/metrics.md

# The same world and schedule without VOS: the cross-entropy ablation quoted in the README.
demo-baseline: .stamp-install
	$(PYTHON) tools/make_synthetic.py --out $(DEMO_WORLD) --outlier-exposure --workers 2
	$(PYTHON) tools/train.py --config configs/demo_baseline.yaml --set run.progress=false
	$(PYTHON) tools/evaluate.py --checkpoint runs/demo_baseline/last.pt --dataset synthetic=$(DEMO_WORLD) \
		--scores energy msp max_logit entropy --out runs/demo_baseline --no-progress

# On a machine with an NVIDIA GPU: the CUDA tests (no host sync in a step, bf16 autocast) and the benchmarks.
gpu-check: .stamp-install
	bash tools/gpu_check.sh

clean:
	rm -rf runs .stamp-install
