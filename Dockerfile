# mailbot: the intake robot, as a small non-root image.
#   docker build -t mailbot .
#   docker run -d --name mailbot --restart unless-stopped --stop-timeout 120 -v mailbot-data:/data \
#       -v "$PWD/config.yaml:/app/config.yaml:ro" -v "$PWD/rules:/app/rules:ro" \
#       -e MAILBOT_IMAP_HOST -e MAILBOT_IMAP_PASSWORD -e MAILBOT_SMTP_HOST -e MAILBOT_SMTP_PASSWORD mailbot
# compose.yaml runs it with PostgreSQL and a trial Dovecot. Linted by scripts/lint-dockerfile.sh.

# --- build: install the package and its dependencies into a virtualenv (binary wheels only)
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/mailbot
WORKDIR /src
COPY pyproject.toml README.md ./
# rules/ and templates/ next to the package: mailbot/_shipped/ links to them, so the wheel
# carries copies and `mailbot demo` works inside the image.
COPY rules ./rules
COPY templates ./templates
COPY mailbot ./mailbot
# Every dependency has binary wheels for this platform: nothing is compiled (the slim image has
# no compiler), and pip and setuptools leave the virtualenv before it is copied.
RUN /opt/mailbot/bin/pip install --no-cache-dir . \
    && /opt/mailbot/bin/pip uninstall --yes --quiet setuptools pip

# --- runtime: no compiler, no pip cache, no build tools; runs as an unprivileged user
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="mailbot" \
      org.opencontainers.image.description="E-mail intake robot for an ombudsman's complaints office" \
      org.opencontainers.image.licenses="EUPL-1.2"
# The data lives in the volume /data; /app holds the configuration, rules and templates. A
# config.yaml with the default `database.url: sqlite:///mailbot.sqlite3` (relative to its
# folder, /app) reaches /data through the link: mailbot resolves the path, so the database and
# its WAL files are written in the volume and survive a new container.
RUN useradd --create-home --uid 10001 --user-group mailbot \
    && install -d -o 10001 -g 10001 /app /data \
    && ln -s /data/mailbot.sqlite3 /app/mailbot.sqlite3
COPY --from=build /opt/mailbot /opt/mailbot
# `mailbot ARGS`, with `mailbot db upgrade` first when the command is `run`
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/mailbot-entrypoint
WORKDIR /app
COPY --chown=mailbot:mailbot config.yaml ./config.yaml
COPY --chown=mailbot:mailbot rules ./rules
COPY --chown=mailbot:mailbot templates ./templates
ENV PATH=/opt/mailbot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MAILBOT_CONFIG=/app/config.yaml
USER 10001:10001
VOLUME ["/data"]
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 CMD ["mailbot", "status", "--check"]
ENTRYPOINT ["mailbot-entrypoint"]
CMD ["run"]
