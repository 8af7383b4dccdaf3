#!/usr/bin/env bash
# Installs the Debian 12 packages attnc needs, only those missing.
# Why each one: README.md, "Dependencies".
set -euo pipefail
pkgs=(gcc make cmake flex bison clang libclang-rt-dev llvm-19-dev libtcc-dev pkg-config libpng-dev python3-dev python3-numpy python3-pytest python3-pip)
missing=()
for p in "${pkgs[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "attnc: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
