# Tidings in a container: `tidings serve` on 0.0.0.0:8000, its SQLite file on the /data volume.
#   docker build -t tidings .
#   docker run -p 8000:8000 -v tidings-data:/data tidings
# For PostgreSQL and separate workers, see compose.yaml and docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/tidings
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home tidings \
    && mkdir -p /data \
    && chown tidings:tidings /data

USER tidings
WORKDIR /data
VOLUME ["/data"]
ENV TIDINGS_DATABASE_URL=sqlite+aiosqlite:////data/tidings.db \
    TIDINGS_PORT=8000
EXPOSE 8000

# Ready means the API answers and its loops are running (`/health/ready` says 503 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TIDINGS_PORT', '8000') + '/health/ready', timeout=4)"]

ENTRYPOINT ["tidings"]
CMD ["serve", "--host", "0.0.0.0"]
