# syntax=docker/dockerfile:1
# stemhook's production image; docker-compose.yml runs it behind nginx (README "Deployment").
#
# build: a virtual environment of the pinned runtime dependencies (deploy/requirements.lock, no
#        dev tools) and the project, installed from its source directory so that app/ and
#        migrations/ stay side by side, where `stemhook serve` finds the migrations it applies.
# final: that environment and the source only, run by an unprivileged user.

# The newest Python that pyproject.toml's requires-python admits
# (docs/decisions/0008-python-versions-and-dependency-bounds.md).
ARG PYTHON_IMAGE=python:3.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# The environment gets no pip of its own: the base image's installs into it and stays behind.
RUN python -m venv --without-pip /opt/stemhook
COPY deploy/requirements.lock /tmp/requirements.lock
# Wheels only: the slim image has no compiler, and a dependency without a wheel must fail here.
RUN pip --python /opt/stemhook/bin/python install --no-deps --only-binary=:all: \
        --requirement /tmp/requirements.lock
WORKDIR /srv/stemhook
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY app ./app
# Editable: the environment gets the `stemhook` script and a path entry for /srv/stemhook.
# `pip check` fails the build if the lock misses anything pyproject.toml asks for.
RUN pip --python /opt/stemhook/bin/python install --no-deps --editable . \
    && pip --python /opt/stemhook/bin/python check \
    && /opt/stemhook/bin/python -m compileall -q --invalidation-mode checked-hash app migrations

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/stemhook/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 stemhook \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/stemhook \
        --shell /usr/sbin/nologin stemhook \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/stemhook/stemhook-files
COPY --from=build /opt/stemhook /opt/stemhook
COPY --from=build /srv/stemhook /srv/stemhook
USER 10001:10001
# The working directory holds the SQLite file when no STEMHOOK_DATABASE_URL is given, and the
# stored result files (stemhook-files/, its own so that a volume mounted there is ours).
WORKDIR /var/lib/stemhook
EXPOSE 8000
# Liveness only (/healthz asks no database); the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["stemhook"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
