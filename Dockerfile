# hfserve on CPU, with the OpenVINO backend. Models are not baked in: mount them at /models
# (every model folder or .gguf file under it is served), or point HFSERVE_CONFIG at a config
# file mounted beside them. Every setting is an HFSERVE_<FIELD> variable.
#   docker build -t hfserve .
#   docker run -p 8000:8000 -v $PWD/models:/models:ro -e HFSERVE_API_KEY=... hfserve

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/hfserve
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY src ./src
# The CPU build of torch: the default index would pull the multi-GB CUDA one. optimum-intel
# pulls a torchvision that cannot import beside this torch; nothing needs it, so it goes.
RUN /opt/hfserve/bin/pip install -c constraints.txt \
        --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && /opt/hfserve/bin/pip install -c constraints.txt '.[openvino,redis]' \
    && (/opt/hfserve/bin/pip uninstall -y torchvision || true)

FROM python:3.11-slim-bookworm
# libgomp: torch's and OpenVINO's thread pools.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group hfserve \
    && mkdir -p /models /cache \
    && chown hfserve:hfserve /models /cache
COPY --from=build /opt/hfserve /opt/hfserve
ENV PATH=/opt/hfserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    HFSERVE_HOST=0.0.0.0 \
    HFSERVE_PORT=8000 \
    HFSERVE_MODEL_DIRS='["/models"]' \
    HFSERVE_CACHE_DIR=/cache/hfserve
USER 10001:10001
WORKDIR /home/hfserve
VOLUME ["/models", "/cache"]
EXPOSE 8000
# Liveness only: /ready is what a load balancer should follow (503 while models load or drain).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HFSERVE_PORT', '8000'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status != 200)"]
ENTRYPOINT ["hfserve", "serve"]
# Binding 0.0.0.0 needs API keys (HFSERVE_API_KEY or HFSERVE_KEYS) while admin routes are on.
CMD []
