# Prepares this machine for agentd's test suite; meant to be sourced:
#   source scripts/test-env.sh && npm ci && npm run build && npm test
# Podman, runc, git, the test image and (only when needed) the containers.conf fix come from
# podman-env.sh; the inspector's browser tests also need Debian's Chromium.

# shellcheck source=podman-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/podman-env.sh" || return 1 2>/dev/null || exit 1

if [ ! -x /usr/bin/chromium ]; then
  echo 'test-env: installing chromium (for the inspector browser tests)' >&2
  _agentd_sudo=''
  if [ "$(id -u)" -ne 0 ]; then _agentd_sudo='sudo'; fi
  $_agentd_sudo apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive $_agentd_sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    { echo 'test-env: could not install chromium' >&2; return 1 2>/dev/null || exit 1; }
  unset _agentd_sudo
fi
