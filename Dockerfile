# syntax=docker/dockerfile:1
# The operator image: `make image`. Docker never runs it here (no Docker
# engine); tests/unit/test_manifests.py checks its shape, and
# tests/unit/test_operator_image_recipe.py that hack/images/build.py's
# `operator` image (`make image-local`: built without Docker on Debian 12's
# python3.11) has the same venv, pip removal, compileall, user, Env, ports,
# Entrypoint and Cmd.
#
# Both stages use the same pinned base, so the venv built in the first runs
# unchanged in the second (its interpreter is /usr/local/bin/python3.11).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Every dependency ships wheels for linux/amd64 and arm64: no compiler needed.
COPY pyproject.toml README.md ./
COPY operator ./operator
# Bytecode is compiled here, because at run time the root filesystem is
# read-only; the venv keeps no pip of its own.
RUN python -m venv /opt/modeldeploy \
 && /opt/modeldeploy/bin/pip install . \
 && /opt/modeldeploy/bin/pip uninstall --yes pip \
 && /opt/modeldeploy/bin/python -m compileall -q /opt/modeldeploy

FROM ${PYTHON_IMAGE}
# The installer is not needed to run, and is one less thing to patch.
RUN python -m pip uninstall --yes pip setuptools wheel
COPY --from=build /opt/modeldeploy /opt/modeldeploy
ENV PATH=/opt/modeldeploy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so the kubelet can verify runAsNonRoot without /etc/passwd.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["modeldeploy"]
CMD ["run", "--liveness=http://0.0.0.0:8081/healthz", "--metrics-port=8080"]
