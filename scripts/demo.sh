#!/usr/bin/env bash
# One real agentd session, end to end, on this machine: bash scripts/demo.sh
#
# Prepares Podman and the base image (scripts/podman-env.sh), builds agentd when needed, starts a daemon
# with the example configuration (examples/agentd.yaml) in a temporary directory, serves an example git
# repository on 127.0.0.1, triggers the `demo` agent on it and follows the session to its outcome, shows
# `agentd status`, stops the daemon with SIGTERM and removes everything it made.
# Exits with the exit code of `agentd trigger` (0 when the session succeeded; see the README).
set -euo pipefail
# A command that fails under `set -e` must not end the demo without a word.
trap 'printf "demo: failed at %s line %s: %s\n" "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND" >&2' ERR

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$PWD"

step() { printf '\n### %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 4
}

tmp=''
daemon_pid=''
git_pid=''
instance=''
daemon_stopped=0

# wait_for_exit PID SECONDS: true once PID has exited, false when it still runs after SECONDS.
wait_for_exit() {
  local pid=$1 tenths=$(($2 * 10))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$tenths" -le 0 ]; then return 1; fi
    sleep 0.1
    tenths=$((tenths - 1))
  done
  return 0
}

# Runs on every exit, also after a failure or Ctrl-C: nothing of the demo may outlive it.
cleanup() {
  local status=$?
  set +e
  trap - ERR
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    echo 'demo: stopping the daemon (SIGTERM)' >&2
    kill -TERM "$daemon_pid" 2>/dev/null
    # A first SIGTERM lets running sessions finish; a second one cancels them.
    wait_for_exit "$daemon_pid" 3 || kill -TERM "$daemon_pid" 2>/dev/null
    wait_for_exit "$daemon_pid" 60 || kill -KILL "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
  fi
  if [ "$daemon_stopped" -ne 1 ] && [ -n "$instance" ]; then
    # The daemon did not stop cleanly, so it could not tear its sessions down: remove what it left.
    local containers secrets
    containers="$(podman ps -a -q --filter "label=io.agentd.instance=$instance" 2>/dev/null)"
    secrets="$(podman secret ls --format '{{.Name}}' 2>/dev/null | grep "^agentd-${instance:0:8}-")"
    # shellcheck disable=SC2086 # one name per word
    if [ -n "$containers" ]; then podman rm -f --time 0 $containers >/dev/null 2>&1; fi
    # shellcheck disable=SC2086
    if [ -n "$secrets" ]; then podman secret rm $secrets >/dev/null 2>&1; fi
  fi
  if [ "$status" -ne 0 ] && [ "$daemon_stopped" -ne 1 ] && [ -n "$tmp" ] && [ -s "$tmp/daemon.log" ]; then
    echo 'demo: last lines of the daemon log:' >&2
    tail -n 30 "$tmp/daemon.log" >&2
  fi
  if [ -n "$git_pid" ]; then
    # git daemon forks a child per connection: stop its whole process group.
    kill -TERM -- "-$git_pid" 2>/dev/null || kill -TERM "$git_pid" 2>/dev/null
    wait "$git_pid" 2>/dev/null
  fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
  return "$status"
}
trap cleanup EXIT

step 'Checking Podman, the runtime and the image (scripts/podman-env.sh)'
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  die 'Node.js 20 or newer is needed (Debian 12 ships 18: install 20+ from https://nodejs.org or NodeSource)'
fi
# Installs what is missing, builds localhost/agentd-base:bookworm when missing, and exports CONTAINERS_CONF
# with the setrlimit/cgroups fix only when this machine needs it.
# shellcheck source=podman-env.sh
if ! source scripts/podman-env.sh; then
  die 'Podman is not ready (see the messages above and "Troubleshooting" in the README)'
fi
if [ -n "${CONTAINERS_CONF:-}" ]; then note "using CONTAINERS_CONF=$CONTAINERS_CONF"; fi

step 'Building agentd'
if [ ! -d node_modules ]; then
  note 'node_modules is missing: npm ci'
  npm ci --no-audit --no-fund
fi
# A fresh clone has no dist/: decide without running find on it (a failing find would end the script).
newest_dist=''
if [ -d dist ]; then
  newest_dist="$(find dist -name '*.js' -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)"
fi
if [ ! -f dist/cli/index.js ] || [ -z "$newest_dist" ] || [ -n "$(find src -name '*.ts' -newer "$newest_dist" | head -n 1)" ]; then
  note 'dist is missing or older than src: npm run build'
  npm run build --silent
else
  note 'dist is up to date'
fi
agentd=(node "$repo_root/dist/cli/index.js")

step 'Writing a configuration from examples/agentd.yaml'
tmp="$(mktemp -d "${TMPDIR:-/tmp}/agentd-demo.XXXXXX")"
export AGENTD_SOCKET="$tmp/agentd.sock"
# The example's demo agent as it is; only the socket and the state dir move into the temporary directory.
# The example's other agent needs credentials this machine does not have (the daemon would warn about them).
node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { isMap, parseDocument } from "yaml";
  const [example, out, socket, stateDir] = process.argv.slice(1);
  const doc = parseDocument(readFileSync(example, "utf8"));
  doc.setIn(["daemon", "socket"], socket);
  doc.setIn(["daemon", "state_dir"], stateDir);
  const agents = doc.get("agents");
  agents.items = agents.items.filter((agent) => isMap(agent) && agent.get("name") === "demo");
  writeFileSync(out, String(doc));
' examples/agentd.yaml "$tmp/agentd.yaml" "$AGENTD_SOCKET" "$tmp/state"
note "$tmp/agentd.yaml: the demo agent of examples/agentd.yaml (socket $AGENTD_SOCKET, state dir $tmp/state)"

step 'Serving an example git repository on 127.0.0.1'
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME='agentd demo' GIT_AUTHOR_EMAIL='demo@agentd.invalid'
export GIT_COMMITTER_NAME='agentd demo' GIT_COMMITTER_EMAIL='demo@agentd.invalid'
mkdir -p "$tmp/work" "$tmp/git"
(
  cd "$tmp/work"
  git init --quiet --initial-branch=main
  printf '# demo\n\nA repository for the agentd demo.\n' >README.md
  git add README.md && git commit --quiet -m 'Add a README'
  printf 'echo "hello from the demo repository"\n' >hello.sh
  git add hello.sh && git commit --quiet -m 'Add hello.sh'
)
git clone --quiet --bare "$tmp/work" "$tmp/git/demo.git"
free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
repo_url=''
for _ in 1 2 3 4 5; do
  port="$(free_port)"
  # setsid: git daemon gets its own process group, so cleanup can stop it with its children.
  setsid git daemon --export-all --reuseaddr --informative-errors --base-path="$tmp/git" \
    --listen=127.0.0.1 --port="$port" "$tmp/git" 2>"$tmp/git-daemon.log" &
  git_pid=$!
  for _ in $(seq 50); do
    if git ls-remote "git://127.0.0.1:$port/demo.git" >/dev/null 2>&1; then
      repo_url="git://127.0.0.1:$port/demo.git"
      break 2
    fi
    kill -0 "$git_pid" 2>/dev/null || break
    sleep 0.1
  done
  # Another process took the port, or the daemon is slow to start: try another port.
  kill -TERM -- "-$git_pid" 2>/dev/null || true
  wait "$git_pid" 2>/dev/null || true
  git_pid=''
done
[ -n "$repo_url" ] || die "git daemon did not start: $(cat "$tmp/git-daemon.log")"
note "$repo_url (git daemon pid $git_pid)"

step 'Starting the daemon: agentd start --config ... --log-format pretty'
# The example's demo agent reads its credential DEMO_TOKEN from this variable of the daemon's environment.
export AGENTD_DEMO_TOKEN='demo-token-not-a-real-secret'
# setsid: a Ctrl-C in this terminal goes to `agentd trigger` (which cancels the session), not to the daemon.
setsid "${agentd[@]}" start --config "$tmp/agentd.yaml" --log-format pretty >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 600); do
  if [ -S "$AGENTD_SOCKET" ] && grep -q 'agentd is ready' "$tmp/daemon.log"; then break; fi
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    wait "$daemon_pid" || true
    daemon_pid=''
    die "the daemon exited during start; its log:
$(cat "$tmp/daemon.log")"
  fi
  sleep 0.1
done
[ -S "$AGENTD_SOCKET" ] || die 'the daemon did not open its socket within 60 s'
# `status` exits non-zero (10 to 13) for a daemon that is not ready; its JSON says the instance all the same.
instance="$({ "${agentd[@]}" status --json || true; } | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).instanceId))')"
note "daemon pid $daemon_pid, log $tmp/daemon.log"
note "instance $instance: its containers and secrets are named agentd-${instance:0:8}-*"

step "Triggering a session: agentd trigger demo $repo_url --work-unit DEMO-1"
trigger_status=0
"${agentd[@]}" trigger demo "$repo_url" --work-unit DEMO-1 || trigger_status=$?
note "agentd trigger exited with $trigger_status"

step 'agentd status'
"${agentd[@]}" status || true

step 'Stopping the daemon (SIGTERM)'
kill -TERM "$daemon_pid" 2>/dev/null || die 'the daemon is gone: it exited before the demo stopped it'
if ! wait_for_exit "$daemon_pid" 60; then die 'the daemon did not exit within 60 s of SIGTERM'; fi
daemon_status=0
wait "$daemon_pid" || daemon_status=$?
daemon_pid=''
[ "$daemon_status" -eq 0 ] || die "the daemon exited with $daemon_status; its log:
$(cat "$tmp/daemon.log")"
daemon_stopped=1
note 'daemon exited with 0'

step "The daemon's log, one line per event (agentd logs JSON lines on stderr; this demo used --log-format pretty)"
# Each pretty entry is a "[time] LEVEL: message" line followed by its fields; show the message and the event.
awk '/^\[/ { if (line != "") print line; line = "    " $0; next }
     /^    event: / { gsub(/"/, "", $2); line = line "  (" $2 ")" }
     END { if (line != "") print line }' "$tmp/daemon.log"

step 'Checking Podman for leftovers'
left="$(
  podman ps -a --format '{{.Names}}' --filter "label=io.agentd.instance=$instance"
  podman secret ls --format '{{.Name}}' | grep "^agentd-${instance:0:8}-" || true
)"
if [ -n "$left" ]; then
  note "WARNING: left in Podman: $(echo "$left" | tr '\n' ' ')"
else
  note "no container or secret named agentd-${instance:0:8}-* is left"
fi

step "Done: the demo exits with the trigger's exit code, $trigger_status"
exit "$trigger_status"
