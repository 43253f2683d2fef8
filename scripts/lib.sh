# Shared by scripts/run and scripts/test: install what is missing, nothing more.
# shellcheck shell=bash

# apt_ensure CMD:PACKAGE ... : installs each Debian PACKAGE whose CMD is not on PATH,
# with one `apt-get update` first, only when something is missing.
apt_ensure() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# venv_ensure EXTRAS: a virtualenv in .venv with the project installed (editable) and EXTRAS;
# reinstalls only when pyproject.toml changed.
venv_ensure() {
  local extras=$1 py=${PYTHON:-python3} stamp
  if [ ! -x .venv/bin/python ]; then
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      apt_ensure "__no_such_cmd__:python3-venv"
    fi
    "$py" -m venv .venv
  fi
  stamp=".venv/.adressat-$(sha256sum pyproject.toml | cut -c1-16)-${extras:-none}"
  if [ ! -e "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    if [ -n "$extras" ]; then
      .venv/bin/python -m pip install -q -e ".[$extras]"
    else
      .venv/bin/python -m pip install -q -e .
    fi
    rm -f .venv/.adressat-*
    touch "$stamp"
  fi
}
