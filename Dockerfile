# duiyi on one NVIDIA GPU (CPU works too). Build: docker build -t duiyi .
# Run:   docker run --gpus all --stop-timeout 90 --restart unless-stopped -p 8000:8000 \
#            -v duiyi-models:/models -v duiyi-data:/data duiyi
# (--stop-timeout 90: stopping finishes requests in flight, hands jobs back; see the README.)
# A worker (no HTTP; PostgreSQL): docker run ... -e DUIYI_DATABASE_URL=... -e DUIYI_METRICS_PORT=9100 duiyi duiyi worker
# /data holds the embedded SQLite database (jobs, segments, keys, glossaries); with PostgreSQL
# (DUIYI_DATABASE_URL) it stays empty. API keys: docker exec CONTAINER duiyi keys create ...
# The default model downloads into the /models volume on the first start (allow a few minutes);
# mount a directory holding a model and set DUIYI_MODEL=/models/NAME to run offline.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 duiyi \
    && useradd --system --uid 10001 --gid duiyi --create-home --home-dir /home/duiyi duiyi \
    && mkdir -p /models /data /app \
    && chown duiyi:duiyi /models /data

WORKDIR /app
# torch first, in its own layer: it is large and changes rarely. Then everything else at the releases
# CI tested (requirements/constraints.txt, written by scripts/lock).
COPY requirements/ requirements/
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install -r requirements/torch.txt
COPY pyproject.toml README.md ./
COPY service/ service/
COPY models/ models/
COPY glossary/ glossary/
RUN /opt/venv/bin/pip install -c requirements/constraints.txt .

USER 10001:10001
ENV PATH=/opt/venv/bin:$PATH \
    DUIYI_HOST=0.0.0.0 \
    DUIYI_PORT=8000 \
    DUIYI_DATA_DIR=/data
VOLUME ["/models", "/data"]
EXPOSE 8000
# serve's /healthz on DUIYI_PORT, or a worker's metrics on DUIYI_METRICS_PORT (service/healthcheck.py);
# a worker without DUIYI_METRICS_PORT has no HTTP to ask: run it with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python3", "-m", "service.healthcheck"]
CMD ["duiyi", "serve"]
