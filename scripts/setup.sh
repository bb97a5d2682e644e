#!/usr/bin/env bash
# Installs everything seekserve needs on Debian 12: build tools and libraries from Debian's
# archive, the npm packages the tests use. Idempotent; prints nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libpcre2-dev libfmt-dev
  libgtest-dev libgmock-dev
  clang-16 libclang-rt-16-dev clang-format
  python3 python3-numpy python3-jinja2
  prometheus prometheus-alertmanager
  libboost-dev nginx-light strace
  nodejs npm
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$pkg")
  fi
done
# A machine may carry Node.js from elsewhere (no Debian 'nodejs'/'npm' package): accept it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for pkg in "${missing[@]}"; do [[ "$pkg" == nodejs || "$pkg" == npm ]] || filtered+=("$pkg"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages pinned by package-lock.json; reinstalled only when the lockfile changed.
if [[ ! -f node_modules/.package-lock.json ]] || ! cmp -s package-lock.json node_modules/.seekserve-lock; then
  echo "setup: installing npm packages"
  npm ci --silent --no-audit --no-fund >/dev/null
  cp package-lock.json node_modules/.seekserve-lock
fi
