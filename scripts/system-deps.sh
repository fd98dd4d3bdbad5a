#!/usr/bin/env bash
# Installs the Debian packages the test command needs besides Go: curl (the
# README examples the suite tests run) and docker-compose 1.29 (which
# validates docker-compose.yml without a Docker engine). Nothing happens when
# they are present; without them, apt-get installs them (as root) or the
# script says what to install.
set -euo pipefail
missing=()
for tool in "$@"; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "missing: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "installing ${missing[*]}"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
