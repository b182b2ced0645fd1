#!/bin/sh
# Installs the service into a new virtualenv, from the project directory it runs in. This is the container
# image's install step (Dockerfile); tests/deploy/test_image.py repeats it in a clean directory on every run.
#
# The package is installed in editable mode: it is imported from this directory, so it finds migrations/,
# questionnaires/ and openapi.yaml beside it (service.config.PROJECT_ROOT). pip builds it in an isolated
# environment with the setuptools pyproject.toml asks for (the one a Python 3.11 venv starts with is too old).
#
# Usage: sh deploy/install.sh VENV        (PYTHON names the interpreter; default python3)
set -eu
venv="$1"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -e .
# Compiled now, because the service's user cannot write beside the code at run time.
"$venv/bin/python" -m compileall -q service
