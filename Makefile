# LLMflation Lab: `make lab` sets up and runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: lab install test models gpu-check rehearse compat lock curve clean

lab: install                     ## preflight, benchmark on this machine's profile, cost curve
	PYTHONUNBUFFERED=1 $(PY) -m utils.lab

install: $(VENV)/.installed      ## virtual environment with torch (CPU build without a GPU), the kit, the real offline model
	$(PY) -m utils.tools.real_model

$(VENV)/.installed: requirements.txt constraints.txt scripts/install_torch.py scripts/lock.py
	$(PYTHON) -m venv $(VENV)
	$(PY) scripts/install_torch.py
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt $$($(PY) scripts/lock.py --pip-args)
	touch $@

lock: install                    ## pin this environment as the tested set (after make test passed)
	$(PY) scripts/lock.py --write

test: install                    ## unit tests and every notebook under nbval (offline profile)
	$(PY) -m pytest

gpu-check: install               ## the GPU path end to end, random weights, one report (CPU: a dry run)
	PYTHONUNBUFFERED=1 $(PY) -m utils.tools.gpu_suite

rehearse: install                ## every notebook of PROFILE (default t4) with shrunk random-weight models
	PYTHONUNBUFFERED=1 $(PY) -m utils.tools.rehearse --profile $(or $(PROFILE),t4) --reduced

compat: install                  ## unit tests and notebook 04 at the transformers range's ends and Colab's
	$(PY) scripts/compat.py

models: install                  ## retrain the offline models (about an hour on 2 cores)
	$(PY) -m utils.tools.build_offline_models

clean:
	rm -rf $(VENV) .pytest_cache
