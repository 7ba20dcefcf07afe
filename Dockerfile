# syntax=docker/dockerfile:1
# symbolsvc server image: multi-stage, non-root, secrets mounted at run time, health probed on
# the loopback-only plaintext port from inside the container. docs/DEPLOY.md walks through it.
#
#   docker build -t symbolsvc:0.1.0 .
#
# Run time mounts (nothing secret is baked into the image):
#   /etc/symbolsvc             the deployment directory (config.toml, policy.toml, pki/), read-only
#   /run/secrets/passphrase    the keyring passphrase ([keys] passphrase_file)
#   /run/secrets/keyring.json  the wrapped keyring ([keys] keyring), if not in the deployment
#   /var/lib/symbolsvc         data (the SQLite registry, when not on PostgreSQL)

ARG PYTHON=python:3.11-slim-bookworm

FROM ${PYTHON} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY symbolsvc ./symbolsvc
COPY clients ./clients
RUN python -m venv /opt/symbolsvc \
 && /opt/symbolsvc/bin/pip install -c constraints.txt './[postgres,tracing]' ./clients

FROM ${PYTHON} AS runtime
LABEL org.opencontainers.image.title="symbolsvc" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 symbolsvc \
 && useradd --system --uid 10001 --gid symbolsvc --no-create-home --shell /usr/sbin/nologin symbolsvc \
 && install -d -o symbolsvc -g symbolsvc -m 0700 /var/lib/symbolsvc /var/log/symbolsvc
COPY --from=build /opt/symbolsvc /opt/symbolsvc
ENV PATH=/opt/symbolsvc/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/symbolsvc
EXPOSE 50051 9464
# The health port is loopback-only by design ([server] health_listen = "127.0.0.1:50052"):
# the probe runs inside the container.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["symbolsvc", "probe", "--address", "127.0.0.1:50052"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["symbolsvc"]
CMD ["serve", "--config", "/etc/symbolsvc/config.toml", "--listen", "0.0.0.0:50051"]
