# mailbot: the intake robot. Build: docker build -t mailbot .
# Run with config and rules mounted:
#   docker run -v $PWD/config.yaml:/app/config.yaml:ro -v $PWD/rules:/app/rules:ro \
#              -v $PWD/templates:/app/templates:ro -e MAILBOT_IMAP_PASSWORD=... mailbot
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailbot ./mailbot
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 mailbot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=mailbot:mailbot config.yaml ./config.yaml
COPY --chown=mailbot:mailbot rules ./rules
COPY --chown=mailbot:mailbot templates ./templates
USER mailbot
ENV MAILBOT_CONFIG=/app/config.yaml
HEALTHCHECK --interval=60s --timeout=10s CMD ["mailbot", "status", "--check"]
ENTRYPOINT ["mailbot"]
CMD ["run"]
