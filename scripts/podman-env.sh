# shellcheck shell=bash
# Prepares this machine for agentd's Podman sessions and tests. Source it (bash):
#   source scripts/podman-env.sh
# 1. installs podman and friends with apt-get when they are missing;
# 2. builds the base image when it is missing (scripts/build-image.sh);
# 3. smoke-runs a container; when the runtime hits the known setrlimit / hybrid-cgroups quirks
#    (see /work/shared/PODMAN.md), writes $REPO/.podman/containers.conf, exports CONTAINERS_CONF
#    and tries again. Returns non-zero with the reason when Podman still does not work.

_agentd_podman_env() {
  local repo image conf out hard nofile
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  image="${AGENTD_TEST_IMAGE:-localhost/agentd-base:bookworm}"
  conf="$repo/.podman/containers.conf"
  local say='echo podman-env:'

  # 1. Packages: only the missing ones, so a prepared machine needs no network.
  local pkg missing=()
  for pkg in podman runc git mmdebstrap uidmap catatonit; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != 'install ok installed' ]; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    local sudo=''
    if [ "$(id -u)" -ne 0 ]; then sudo='sudo'; fi
    $say "installing ${missing[*]}" >&2
    if ! { $sudo apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      $say "FAILED to install ${missing[*]} with apt-get" >&2
      return 1
    fi
  fi
  if ! command -v podman >/dev/null 2>&1; then
    $say 'FAILED: podman is not on PATH after installing it' >&2
    return 1
  fi

  # A CONTAINERS_CONF naming no file breaks every podman call; the smoke run below replaces it if needed.
  if [ -n "${CONTAINERS_CONF:-}" ] && [ ! -r "$CONTAINERS_CONF" ]; then
    $say "ignoring CONTAINERS_CONF=$CONTAINERS_CONF (no such file)" >&2
    unset CONTAINERS_CONF
  fi

  # 2. Image: built once per machine, never per test. `image exists` says 1 for missing, more for trouble.
  local rc=0
  podman image exists "$image" || rc=$?
  if [ "$rc" -gt 1 ]; then
    $say "FAILED: podman image exists $image exited with $rc; check \`podman info\`" >&2
    return 1
  fi
  if [ "$rc" -eq 1 ]; then
    if ! bash "$repo/scripts/build-image.sh" "$image"; then
      $say "FAILED to build $image (see above)" >&2
      return 1
    fi
  fi

  # 3. Smoke run; keep a CONTAINERS_CONF the caller set if it works.
  if out="$(podman run --rm "$image" true 2>&1)"; then
    $say "$(podman --version | awk '{print $3}'), $image present, smoke run ok${CONTAINERS_CONF:+ (CONTAINERS_CONF=$CONTAINERS_CONF)}" >&2
    return 0
  fi
  if ! grep -qiE 'setrlimit|error setting rlimit|RLIMIT_NOFILE|RLIMIT_NPROC|cgroups in hybrid mode' <<<"$out"; then
    $say "FAILED: podman run --rm $image true:" >&2
    printf '%s\n' "$out" >&2
    return 1
  fi
  # The runtime may not raise limits above the hard ones, and crun cannot drive hybrid cgroups: runc can.
  hard="$(ulimit -Hn)"
  nofile=20000
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$nofile" ]; then nofile="$hard"; fi
  mkdir -p "$repo/.podman" || return 1
  cat >"$conf" <<CONF || return 1
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF="$conf"
  if out="$(podman run --rm "$image" true 2>&1)"; then
    $say "runtime hit the setrlimit/cgroups quirk; wrote $conf (nofile=$nofile, nproc=32768, runc)" >&2
    $say "export CONTAINERS_CONF=$conf; smoke run ok" >&2
    return 0
  fi
  $say "FAILED: podman run --rm $image true still fails with CONTAINERS_CONF=$conf:" >&2
  printf '%s\n' "$out" >&2
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo 'podman-env: note: run as a script, CONTAINERS_CONF is not exported to your shell; use `source`' >&2
fi
_agentd_podman_env
_agentd_podman_env_status=$?
unset -f _agentd_podman_env
if [ "$_agentd_podman_env_status" -ne 0 ]; then
  unset _agentd_podman_env_status
  # shellcheck disable=SC2317 # return works when sourced, exit when run
  return 1 2>/dev/null || exit 1
fi
unset _agentd_podman_env_status
