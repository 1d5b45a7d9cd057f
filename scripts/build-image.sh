#!/usr/bin/env bash
# Builds the session base image localhost/agentd-base:bookworm from Debian's packages (no registry needed).
# Does nothing when the image already exists. Usage: bash scripts/build-image.sh [IMAGE]
set -euo pipefail

image="${1:-localhost/agentd-base:bookworm}"
suite="${AGENTD_IMAGE_SUITE:-bookworm}"

for tool in podman mmdebstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-image: $tool is missing; install it (apt-get install -y $tool) or, from a checkout, source scripts/podman-env.sh" >&2
    exit 1
  fi
done

# `image exists` says 1 for a missing image; anything else is Podman trouble that a build would not fix.
rc=0
podman image exists "$image" || rc=$?
if [ "$rc" -eq 0 ]; then
  echo "build-image: $image already exists" >&2
  exit 0
elif [ "$rc" -ne 1 ]; then
  echo "build-image: podman image exists $image exited with $rc; check \`podman info\`" >&2
  exit 1
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/agentd-image.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "build-image: building $image with mmdebstrap ($suite, minbase); this takes a minute" >&2
started=$SECONDS
mmdebstrap --quiet --variant=minbase --include=git,gosu,ca-certificates,passwd \
  --skip=check/empty "$suite" "$tmp/base.tar"
podman import --quiet "$tmp/base.tar" "$image" >/dev/null
echo "build-image: built $image in $((SECONDS - started))s" >&2
