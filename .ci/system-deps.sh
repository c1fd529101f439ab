#!/usr/bin/env bash
# Debian packages the tests need: espeak-ng and sox make test audio, chromium runs the browser test.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox libsox-fmt-all)
command -v chromium >/dev/null || need+=(chromium)
command -v pg_isready >/dev/null || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
