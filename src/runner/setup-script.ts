import { SECRET_MOUNT_DIR } from '../constants.js';

/**
 * The root setup step that runs first in every session container (as `/bin/sh -c SCRIPT agentd-setup
 * COMMAND...`). It holds no values: credentials arrive as root-only secret files, which it reads into
 * the environment of the agent's command after creating the agent's user and cloning the repository
 * as that user. It announces its progress with marker lines the runner reads (and hides) until the
 * agent's command starts, and one last marker line when the command has ended.
 *
 * It runs with the capabilities in SETUP_CAPABILITIES only (see container-policy.ts): no write to a
 * file it does not own beyond what root owns, which is why the agent's home is filled from /etc/skel
 * by hand rather than by `useradd --create-home` (which needs DAC_OVERRIDE and FOWNER).
 *
 * The command runs as a child of this step, not in its place: when it ends, the step reads the
 * container's OOM-kill count (Podman 4.3 on cgroup v1 reports none) and prints
 * `MARKER ended STATUS OOM_KILLS`. Stop signals the step receives are forwarded to the command; the
 * command starts with default dispositions (a background job of sh would ignore SIGINT and SIGQUIT).
 * Everything after the command has started is fork-free (shell builtins), so a command that uses up
 * the pids limit cannot keep the report from being written.
 *
 * Exit codes: 127 when the command does not exist, 126 when it cannot be executed; otherwise the
 * command's own exit code (128 + N when a signal N ended it).
 */
export const SETUP_SCRIPT = `set -eu
exec 2>&1
m="$AGENTD_SETUP_MARKER"
say() { printf '%s %s\\n' "$m" "$1"; }
say started
user="$AGENTD_AGENT"
home="/home/$user"
secrets="${SECRET_MOUNT_DIR}"
oom=0
oom_kills() {
  f=/sys/fs/cgroup/memory.events
  [ -r "$f" ] || f=/sys/fs/cgroup/memory/memory.oom_control
  [ -r "$f" ] || return 0
  while read -r k v; do if [ "$k" = oom_kill ]; then oom=$v; fi; done < "$f"
}
ended() { oom_kills; say "ended $1 $oom"; exit "$1"; }
mkdir -p "$home"
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --no-create-home --home-dir "$home" --shell /bin/sh --user-group "$user" >/dev/null
  if [ -d /etc/skel ]; then cp -R /etc/skel/. "$home/" 2>/dev/null || :; fi
  chown -R "$user:" "$home"
fi
chown "$user:" "$home"
export HOME="$home" USER="$user" LOGNAME="$user"
caps="\${AGENTD_SETUP_CAPS:-}"
if [ -n "$caps" ]; then
  command -v setpriv >/dev/null 2>&1 || { echo "agentd: cap_add needs setpriv (util-linux) in the image"; exit 126; }
  drop="setpriv --reuid=$user --regid=$user --init-groups --inh-caps $caps --ambient-caps $caps"
elif command -v gosu >/dev/null 2>&1; then
  drop="gosu $user"
else
  drop="setpriv --reuid=$user --regid=$user --init-groups"
fi
as_user() { $drop "$@"; }
say "phase cloning"
cd "$home"
rm -rf "$home/repo"
if [ -f "$secrets/.repo_token" ]; then
  tok=$(cat "$secrets/.repo_token"; printf x)
  tok=\${tok%x}
  # git reads its config from the environment: the token never appears on a command line. Scoped to
  # the repository's origin, it is sent nowhere else, and a redirect is not followed with it.
  o="$AGENTD_SETUP_TOKEN_ORIGIN/"
  (
    export GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0="http.$o.extraHeader" GIT_CONFIG_VALUE_0="Authorization: Bearer $tok"
    export GIT_CONFIG_KEY_1="http.$o.followRedirects" GIT_CONFIG_VALUE_1=false
    as_user git clone --quiet -- "$AGENTD_REPO_URL" "$home/repo"
  ) || ended $?
  unset tok
else
  as_user git clone --quiet -- "$AGENTD_REPO_URL" "$home/repo" || ended $?
fi
for n in \${AGENTD_SETUP_CREDENTIALS:-}; do
  v=$(cat "$secrets/$n"; printf x)
  export "$n=\${v%x}"
done
unset v n AGENTD_WORK_UNIT
if [ -n "\${AGENTD_SETUP_WORK_UNIT+x}" ]; then export AGENTD_WORK_UNIT="$AGENTD_SETUP_WORK_UNIT"; fi
unset AGENTD_SETUP_CREDENTIALS AGENTD_SETUP_WORK_UNIT AGENTD_SETUP_MARKER AGENTD_SETUP_TOKEN_ORIGIN AGENTD_SETUP_CAPS
cd "$home/repo"
c="$1"
resolved=""
case "$c" in
  */*) resolved="$c" ;;
  *)
    IFS=:
    for d in $PATH; do
      if [ -e "$d/$c" ] && [ ! -d "$d/$c" ]; then resolved="$d/$c"; break; fi
    done
    unset IFS
    ;;
esac
if [ -z "$resolved" ] || [ ! -e "$resolved" ]; then
  say "phase running"
  echo "agentd: $c: command not found in the image"
  exit 127
fi
if ! as_user test -x "$resolved" || [ -d "$resolved" ]; then
  say "phase running"
  echo "agentd: $c: permission denied (not an executable file)"
  exit 126
fi
reset=""
if env --default-signal=INT true >/dev/null 2>&1; then reset="env --default-signal=INT,QUIT"; fi
pid=""
pending=""
forward() { if [ -n "$pid" ]; then kill -s "$1" "$pid" 2>/dev/null || :; else pending="$1"; fi; got=1; }
for s in TERM INT HUP QUIT USR1 USR2 ALRM WINCH; do trap "forward $s" "$s"; done
say "phase running"
set +e
$reset $drop "$@" &
pid=$!
# From here on the step prints only its report: not sh's own notes on the job (e.g. "Killed").
exec 2>/dev/null
if [ -n "$pending" ]; then kill -s "$pending" "$pid" 2>/dev/null; fi
while :; do
  got=""
  wait "$pid"
  status=$?
  # A forwarded signal interrupts wait; the command may still run (or be a zombie not yet waited for).
  if [ -z "$got" ] || ! kill -0 "$pid" 2>/dev/null; then break; fi
done
ended "$status"
`;

export const SETUP_ENTRYPOINT = ['/bin/sh', '-c', SETUP_SCRIPT, 'agentd-setup'];
