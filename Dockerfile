# Kizuna: `kizuna serve` (Slack bot + scheduler) in a slim, non-root image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY connectors ./connectors
COPY core ./core
COPY playbooks ./playbooks
COPY templates ./templates
COPY scheduler.py ./
RUN pip install --no-cache-dir --prefix=/install ".[postgres]"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KIZUNA_LOG_FORMAT=json
RUN useradd --create-home --uid 10001 kizuna && mkdir -p /data && chown kizuna /data
COPY --from=build /install /usr/local
WORKDIR /data
USER kizuna
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["kizuna"]
CMD ["serve", "--port", "8080"]
