# The image for the Prefect worker and for every flow run it starts on a cluster (and the
# webhook relay): this repository at /opt/prefect-canary with requirements.txt and
# requirements-kubernetes.txt installed. prefect.kubernetes.yaml's pull step changes into
# /opt/prefect-canary, and deployments/kubernetes/ runs this image.
#   docker build -t registry.example.com/prefect-canary:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/prefect-canary \
    HOME=/home/canary \
    PREFECT_HOME=/home/canary/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

WORKDIR /opt/prefect-canary

# git: the build flow reads the pushed commit's .canary/ (a shallow fetch of that commit).
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first: a code change then rebuilds only the last layers.
COPY requirements.txt requirements-kubernetes.txt ./
RUN pip install -r requirements-kubernetes.txt

# The same numeric user as deployments/kubernetes (runAsUser: 10001, runAsNonRoot).
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/canary canary

COPY --chown=root:root . .

USER 10001
# Fails the build, not the first flow run, when the code and its dependencies do not import
# (as the user that runs them, so nothing under HOME ends up owned by root).
RUN python -c "import flows.canary_release, flows.reconcile, blocks.kubernetes, webhook, prefect_kubernetes"
CMD ["prefect", "worker", "start", "--type", "kubernetes", "--pool", "canary-kubernetes"]
