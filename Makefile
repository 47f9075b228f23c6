# vos-seg: `make demo` (train, evaluate, render on the synthetic road world) and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install test demo benchmark clean

# Quiet and idempotent: pip only does work when something is missing or pyproject.toml changed.
.stamp-install: pyproject.toml
	$(PIP) install -q -e '.[dev]'
	@touch $@

install: .stamp-install

test: .stamp-install
	$(PYTHON) -m pytest -q

benchmark: .stamp-install
	$(PYTHON) tools/benchmark.py

demo: .stamp-install
	@echo "demo: not wired yet"

clean:
	rm -rf runs .stamp-install
