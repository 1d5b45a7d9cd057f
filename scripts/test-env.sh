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

# The fleet test (test/e2e/hosts.test.ts) reaches one Podman host over ssh:// through an sshd it starts
# on a loopback port. The package's own sshd service must not start (it would listen on every address):
# a policy-rc.d refuses service starts while it installs.
if [ ! -x /usr/sbin/sshd ]; then
  echo 'test-env: installing openssh-server (for the ssh:// fleet test; its service is not started)' >&2
  _agentd_sudo=''
  if [ "$(id -u)" -ne 0 ]; then _agentd_sudo='sudo'; fi
  _agentd_policy=''
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $_agentd_sudo tee /usr/sbin/policy-rc.d >/dev/null &&
      $_agentd_sudo chmod 755 /usr/sbin/policy-rc.d && _agentd_policy=1
  fi
  $_agentd_sudo apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive $_agentd_sudo apt-get install -y -qq --no-install-recommends openssh-server >/dev/null ||
    echo 'test-env: could not install openssh-server; the fleet test reaches its third host over unix:// instead' >&2
  if [ -n "$_agentd_policy" ]; then $_agentd_sudo rm -f /usr/sbin/policy-rc.d; fi
  unset _agentd_sudo _agentd_policy
fi

# user_namespace: auto (test/e2e/userns.test.ts): a rootful Podman gives each such session a range of
# 65536 ids from the `containers` entries of /etc/subuid and /etc/subgid. A range of 32 sessions that
# overlaps no entry of either file is added to each file that has none (once: a second run adds nothing).
_agentd_sudo=''
if [ "$(id -u)" -ne 0 ]; then _agentd_sudo='sudo'; fi
_agentd_start=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: -v want=2097152 '
  NF == 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { n++; st[n] = $2 + 0; ct[n] = $3 + 0 }
  END {
    s = 2000000
    do { moved = 0; for (i = 1; i <= n; i++) if (st[i] < s + want && st[i] + ct[i] > s) { s = st[i] + ct[i]; moved = 1 } } while (moved)
    print s
  }')
for _agentd_file in /etc/subuid /etc/subgid; do
  if ! grep -q '^containers:' "$_agentd_file" 2>/dev/null; then
    echo "test-env: adding containers:$_agentd_start:2097152 to $_agentd_file (for user_namespace: auto)" >&2
    echo "containers:$_agentd_start:2097152" | $_agentd_sudo tee -a "$_agentd_file" >/dev/null ||
      echo "test-env: could not add a containers range to $_agentd_file; test/e2e/userns.test.ts will fail" >&2
  fi
done
unset _agentd_sudo _agentd_start _agentd_file
