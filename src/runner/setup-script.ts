import { OUTPUT_TARGET } from '../config/mounts.js';
import { AGENT_UID, SECRET_MOUNT_DIR, SYSTEM_PATH } from '../constants.js';

/**
 * The root setup step that runs first in every session container (as `/bin/sh -c SCRIPT agentd-setup
 * COMMAND...`). It holds no values: credentials arrive as one root-only secret (a bundle it splits), which it reads into
 * the environment of the agent's command after creating the agent's user and cloning the repository
 * as that user. It announces its progress with marker lines the runner reads (and hides) until the
 * agent's command starts, and one last marker line when the command has ended.
 *
 * It runs with the capabilities in SETUP_CAPABILITIES only (see container-policy.ts): no write to a
 * file it does not own beyond what root owns, which is why the agent's home is filled from /etc/skel
 * by hand (as the agent's user) rather than by `useradd --create-home` (which needs DAC_OVERRIDE and
 * FOWNER). What runs as root here comes from the system's directories only and runs in `/`, never in
 * a directory the agent can write: the command is started in the clone by the agent's own sh.
 *
 * The command runs as a child of this step, not in its place: when it ends, the step reads the
 * container's OOM-kill count (Podman 4.3 on cgroup v1 reports none) and prints
 * `MARKER ended STATUS OOM_KILLS`. Stop signals the step receives are forwarded to the command; the
 * command starts with default dispositions (a background job of sh would ignore SIGINT and SIGQUIT).
 * Everything after the command has started is fork-free (shell builtins) until the report is written,
 * so a command that uses up the pids limit cannot keep the report from being written.
 *
 * The step's own output, and the setup's (git's errors included), goes to the container's stdout; the
 * command's stderr stays the container's stderr, so the daemon can tell the command's two streams apart.
 *
 * Work in and results out: the agent's user is given /agentd/out and its caches (and the directories
 * between its home and a cache, which the runtime made as root); a cache already owned by the user is
 * left alone, so a large one is not walked every session. After the clone it reports the commit it
 * cloned. When the command has ended (also after a stop: on the first stop signal it gives the command
 * AGENTD_SETUP_GRACE seconds, then kills it, which leaves time before Podman's own SIGKILL), it archives
 * /agentd/out as the agent's user into the root-only copy directory, at most AGENTD_SETUP_COPY_MAX
 * bytes (a larger archive arrives cut short, and agentd says so), once every process the command left
 * running is gone. An archive it cannot write (the state dir is full) it removes, and writes why beside
 * it (out.withheld), which the sealed record's output summary says instead.
 *
 * Exit codes: 127 when the command does not exist, 126 when it cannot be executed; otherwise the
 * command's own exit code (128 + N when a signal N ended it).
 */
/**
 * What the setup step's archive leaves free on the state dir's filesystem: the 128 KiB the state dir keeps
 * for the daemon's other writes (RESERVE_BYTES in adapters/session-store.ts, which a seal leaves free too).
 */
const SEAL_KEEPS_FREE = 128 * 1024;

export const SETUP_SCRIPT = `set -eu
exec 3>&2 2>&1
# No core dumps from anything the agent runs: its hard limit too, which it cannot raise again. A host
# whose core_pattern pipes to systemd-coredump or apport would keep them on its disk, outside the
# session's bounds. Not podman's --ulimit: Podman 4.3 then drops containers.conf's default_ulimits.
ulimit -c 0
# The step's own tools come from the system's directories only: a cache or mount on the image's PATH
# (/opt/conda/bin) holds what an earlier session left there, which must not run as root here, nor see
# the repo token. The command gets the image's PATH as it was.
image_path="\${PATH:-${SYSTEM_PATH}}"
PATH="${SYSTEM_PATH}"
export PATH
# Never in a directory the agent can write: with an empty element in the image's LD_LIBRARY_PATH (a
# Dockerfile's "ENV LD_LIBRARY_PATH=/x/lib:$LD_LIBRARY_PATH"), what root runs would load libraries
# from there. The command starts in the clone (see below), the step stays here.
cd /
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
copy_dir="\${AGENTD_SETUP_COPY:-}"
copy_max="\${AGENTD_SETUP_COPY_MAX:-0}"
grace="\${AGENTD_SETUP_GRACE:-10}"
ran=""
copy_out() {
  [ -n "$ran" ] && [ -n "$copy_dir" ] && [ -d "$copy_dir" ] && [ -d ${OUTPUT_TARGET} ] || return 0
  ran=""
  # Nothing of the agent's runs while its output is archived: what its command left running could
  # change the files or the archiver (the same user) meanwhile, or hold every pid so that archiving
  # cannot fork. sh's own kill and wait, as root (no fork): everything but this step and the
  # container's init, again until only those two are left in /proc (a fork bomb forks while it is
  # killed, and a killed process holds its pid until it is reaped: this step reaps its own, the
  # watchdog; the container's init the rest). Bounded: a process the kernel cannot kill yet stays.
  n=0
  while [ "$n" -lt 5000 ]; do
    kill -s KILL -- -1 2>/dev/null
    wait 2>/dev/null
    left=0
    for p in /proc/[0-9]*; do left=$((left + 1)); done
    [ "$left" -le 2 ] && break
    n=$((n + 1))
  done
  # A file or directory the agent made unreadable to itself (chmod 000) tar would leave out without a
  # word: readable again for its owner, as the agent's user (only its own files; links are not
  # followed). The record sets every mode anyway.
  as_user chmod -R u+rX ${OUTPUT_TARGET} 2>/dev/null || :
  # Never the last 128 KiB of the state dir's filesystem, which the daemon keeps for its other writes (a
  # trigger's record, a running session's log): with less room than its bound beyond them (f, from stat
  # -f's blocks free to others than root, k, and their size), the archive is written up to that room
  # (left), and one that reaches it is not kept (it did not fit). An image without stat archives as
  # before. Names the step uses already (see SETUP_STEP_VARIABLES), done with by now.
  left=$copy_max
  f=$(stat -f -c %a "$copy_dir" 2>/dev/null) || f=""
  k=$(stat -f -c %S "$copy_dir" 2>/dev/null) || k=""
  case "$f$k" in
    *[!0-9]*) f="" ;;
  esac
  [ -n "$f" ] && [ -n "$k" ] && f=$((f * k - ${SEAL_KEEPS_FREE})) || f=""
  if [ -n "$f" ] && [ "$f" -lt "$copy_max" ]; then left=$f; else f=""; fi
  # What failed says why in v: head's, sh's or mv's own message (tar's, which names the agent's files,
  # is not kept).
  if [ -z "$f" ] || [ "$left" -gt 0 ]; then
    v=$( { as_user tar -cf - -C ${OUTPUT_TARGET} . 2>/dev/null | head -c "$left" > "$copy_dir/out.tar.part"; } 2>&1 ) && {
      if [ -n "$f" ] && [ "$(wc -c < "$copy_dir/out.tar.part")" -ge "$left" ]; then
        v="No space left on device, $((left / 1024)) KiB free beyond the ${SEAL_KEEPS_FREE / 1024} KiB agentd keeps for its other writes"
      else
        v=$(mv -f "$copy_dir/out.tar.part" "$copy_dir/out.tar" 2>&1) && return 0
      fi
    }
  else
    v="No space left on device, none free beyond the ${SEAL_KEEPS_FREE / 1024} KiB agentd keeps for its other writes"
  fi
  # Not archived, and not silently: the record says why (the daemon's seal reads out.withheld, which it
  # reads only where the copy directory is its work dir, in the state dir). The part goes first, which
  # gives the note room when the filesystem is full. Only the system's words (after the last ": "): no
  # path or name of the agent's.
  rm -f "$copy_dir/out.tar.part" 2>/dev/null
  v=\${v##*: }
  [ "\${#v}" -le 200 ] || v=""
  case "$v" in
    *"No space left"* | *"quota exceeded"*) line="the state dir was full when the session ended: its output could not be archived (free space on the state dir's filesystem: $v)" ;;
    *) line="its output could not be archived in the state dir\${v:+ ($v)}" ;;
  esac
  printf '%s' "$line" > "$copy_dir/out.withheld" 2>/dev/null || rm -f "$copy_dir/out.withheld" 2>/dev/null || :
}
# The report comes first. Archiving forks, and a fork that fails (the command's left-over processes use
# up the pids limit) makes sh exit: the EXIT trap keeps the command's status as the container's.
ended() {
  oom_kills
  say "ended $1 $oom"
  final=$1
  trap 'exit "$final"' EXIT
  copy_out
  exit "$1"
}
mkdir -p "$home"
# On a host that does not see the daemon's files the archive stays in the container, root-only.
if [ -n "$copy_dir" ] && [ ! -d "$copy_dir" ]; then mkdir -p -m 0700 "$copy_dir"; fi
# Where it is mounted from the daemon's work dir, that directory belongs to the daemon's uid, which a
# non-root daemon on a rootful Podman shares with an agent's user: its parent keeps the agent out.
if [ -n "$copy_dir" ]; then chmod 0700 "\${copy_dir%/*}"; fi
skel=""
if ! id -u "$user" >/dev/null 2>&1; then
  # A fixed uid that is nobody's on the host (AGENT_UID), not the image's first free one.
  if grep -q '^[^:]*:[^:]*:${AGENT_UID}:' /etc/passwd; then
    echo "agentd: uid ${AGENT_UID}, which agentd gives the agent's user, is taken in this image: create the user $user in the image (any uid) instead"
    exit 1
  fi
  # Its group too: useradd would take the first free gid instead (1000: the host's first person's).
  if grep -q '^[^:]*:[^:]*:${AGENT_UID}:' /etc/group; then
    echo "agentd: gid ${AGENT_UID}, which agentd gives the agent's group, is taken in this image: create the user $user in the image (any uid) instead"
    exit 1
  fi
  # --no-log-init: root writes nothing in /var/log (lastlog, faillog), where an agent's cache or mount
  # may be, holding links its sessions left. -K: the image's login.defs would warn that the uid is
  # past its UID_MAX (60000 on Debian), which is the point.
  useradd --no-log-init --no-create-home -K UID_MAX=${AGENT_UID} -K GID_MAX=${AGENT_UID} --uid ${AGENT_UID} --home-dir "$home" --shell /bin/sh --user-group "$user" >/dev/null
  skel=1
fi
chown "$user:" "$home"
if [ -d ${OUTPUT_TARGET} ]; then chown "$user:" ${OUTPUT_TARGET}; fi
uid=$(id -u "$user")
for c in \${AGENTD_SETUP_CACHES:-}; do
  d="\${c%/*}"
  while [ "\${d#"$home"/}" != "$d" ]; do chown "$user:" "$d"; d="\${d%/*}"; done
  if [ "$(stat -c %u "$c")" != "$uid" ]; then chown -R -h "$user:" "$c"; fi
done
export HOME="$home" USER="$user" LOGNAME="$user"
caps="\${AGENTD_SETUP_CAPS:-}"
# The drop's tool by its full path, found now, and only one that root alone can change (it and its
# directory root's, not writable by group or others): root runs it again after the command (archiving),
# and an image may hand /usr/local (where gosu is often put) to the agent's user.
root_only() {
  perms=$(stat -L -c '%u:%a' "$1" "\${1%/*}" 2>/dev/null) || return 1
  for perm in $perms; do
    case "$perm" in 0:*) ;; *) return 1 ;; esac
    case "\${perm#0:}" in *[2367]? | *[2367]) return 1 ;; esac
  done
}
if [ -n "$caps" ]; then
  t=$(command -v setpriv) && root_only "$t" || { echo "agentd: cap_add needs setpriv (util-linux) in the image, which only root can change"; exit 126; }
  drop="$t --reuid=$user --regid=$user --init-groups --inh-caps $caps --ambient-caps $caps"
elif t=$(command -v gosu) && root_only "$t"; then
  drop="$t $user"
elif t=$(command -v setpriv) && root_only "$t"; then
  drop="$t --reuid=$user --regid=$user --init-groups"
else
  echo "agentd: the image has neither gosu nor setpriv (util-linux) that only root can change"
  exit 126
fi
# What runs as the agent's user is what the OOM killer takes first (1000, which whatever it starts
# inherits), never this step (0, which it cannot lower without CAP_SYS_RESOURCE): memory the agent
# left in a tmpfs belongs to no process, and the kernel then took this step (as small as any) first,
# which lost its report (out of memory, the command's status) and the output's archive.
oom_first() { echo 1000 > /proc/self/oom_score_adj 2>/dev/null || :; }
as_user() { (oom_first; exec $drop "$@" 3>&- 4>&-); }
# /etc/skel is copied as the agent's user: a cache below the home may hold a link (or a fifo) where a
# file of /etc/skel goes, which root would write through (or hang on).
if [ -n "$skel" ] && [ -d /etc/skel ]; then as_user cp -R /etc/skel/. "$home/" 2>/dev/null || :; fi
# git for the clone, as the agent's user: without the user's own git config (a cache or a writable mount
# may keep ~/.gitconfig or ~/.config/git from an earlier session, whose hooks and commands would run
# here with the repo token in their environment), without hooks, and without the marker.
as_git() {
  as_user env -u AGENTD_SETUP_MARKER GIT_CONFIG_GLOBAL=/dev/null \\
    git -c core.hooksPath=/dev/null -c core.attributesFile=/dev/null "$@"
}
# The credentials (and the repo token) arrive as one root-only bundle (credential-bundle.ts): a header
# line "agentd1 NAME SIZE ...", then the values' bytes; past Podman's size limit in chunks bundle.N.
creds=""
tok_at=""
tok_size=""
if [ -f "$secrets/bundle.0" ]; then
  IFS= read -r head < "$secrets/bundle.0" || :
  at=$((\${#head} + 1))
  n=""
  tag=""
  for w in $head; do
    if [ -z "$tag" ]; then tag=$w; continue; fi
    if [ -z "$n" ]; then n=$w; continue; fi
    if [ "$n" = .repo_token ]; then tok_at=$at tok_size=$w; else creds="$creds $n:$at:$w"; fi
    at=$((at + w))
    n=""
  done
  unset head at n w tag
fi
# The bytes of one value: OFFSET SIZE.
value() {
  if [ -f "$secrets/bundle.1" ]; then
    i=0
    while [ -f "$secrets/bundle.$i" ]; do cat "$secrets/bundle.$i"; i=$((i + 1)); done | tail -c +"$(($1 + 1))" | head -c "$2"
  else
    tail -c +"$(($1 + 1))" "$secrets/bundle.0" | head -c "$2"
  fi
}
say "phase cloning"
rm -rf "$home/repo"
if [ -n "$tok_at" ]; then
  tok=$(value "$tok_at" "$tok_size"; printf x)
  tok=\${tok%x}
  # git reads its config from the environment: the token never appears on a command line. Scoped to
  # the repository's origin, it is sent nowhere else, and a redirect is not followed with it. Traces
  # are redacted whatever the agent's env or the image says (GIT_TRACE_CURL with GIT_TRACE_REDACT=0
  # wrote the header to a file the agent could read after the clone). trace2 never redacts: with
  # GIT_TRACE2_CONFIG_PARAMS or GIT_TRACE2_ENV_VARS (env or the image's /etc/gitconfig) it wrote the
  # header in the clear, so it is off for this clone ("0" overrides a target the system config sets).
  o="$AGENTD_SETUP_TOKEN_ORIGIN/"
  (
    export GIT_TRACE_REDACT=1 GIT_TRACE2=0 GIT_TRACE2_EVENT=0 GIT_TRACE2_PERF=0
    export GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0="http.$o.extraHeader" GIT_CONFIG_VALUE_0="Authorization: Bearer $tok"
    export GIT_CONFIG_KEY_1="http.$o.followRedirects" GIT_CONFIG_VALUE_1=false
    as_git clone --quiet -- "$AGENTD_REPO_URL" "$home/repo"
  ) || ended $?
  unset tok
else
  as_git clone --quiet -- "$AGENTD_REPO_URL" "$home/repo" || ended $?
fi
say "commit $(as_git -C "$home/repo" rev-parse HEAD 2>/dev/null || :)"
for c in $creds; do
  n=\${c%%:*}
  c=\${c#*:}
  v=$(value "\${c%%:*}" "\${c#*:}"; printf x)
  export "$n=\${v%x}"
done
unset v n c creds tok_at tok_size AGENTD_WORK_UNIT
if [ -n "\${AGENTD_SETUP_WORK_UNIT:-}" ]; then export AGENTD_WORK_UNIT="$AGENTD_SETUP_WORK_UNIT"; fi
unset AGENTD_SETUP_WORK_UNIT AGENTD_SETUP_MARKER AGENTD_SETUP_TOKEN_ORIGIN AGENTD_SETUP_CAPS
unset AGENTD_SETUP_CACHES AGENTD_SETUP_COPY AGENTD_SETUP_COPY_MAX AGENTD_SETUP_GRACE
c="$1"
resolved=""
case "$c" in
  /*) resolved="$c" ;;
  */*) resolved="$home/repo/$c" ;;
  *)
    IFS=:
    for d in $image_path; do
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
watchdog=""
forward() {
  if [ -n "$pid" ]; then kill -s "$1" "$pid" 2>/dev/null || :; else pending="$1"; fi
  got=1
  if [ "$1" = TERM ] && [ -n "$watchdog" ]; then
    echo stop >&4
    watchdog=""
  fi
}
for s in TERM INT HUP QUIT USR1 USR2 ALRM WINCH; do trap "forward $s" "$s"; done
set +e
# After a stop (SIGTERM) the command has the grace period, then this watchdog has it killed: its output
# is archived before Podman's SIGKILL (which comes a few seconds later) ends everything. Its processes
# are forked before the command, which may use up the pids limit, so a stop needs no fork: the stop is
# a line on a pipe (fd 4, a fifo in root's /run/agentd, unlinked once open), the timer reading it
# becomes sleep by exec, and the watchdog then tells this shell (XCPU, which nothing else sends it) to
# kill. A pipe, not a signal: a line written before the timer reads is kept, where a signal that comes
# before a child's trap is set would be lost.
trap 'got=1; if [ -n "$pid" ]; then kill -s KILL "$pid"; fi' XCPU
stop_pipe="\${copy_dir%/*}/stop"
if [ -n "$copy_dir" ] && mkfifo -m 0600 "$stop_pipe" 2>/dev/null; then
  exec 4<>"$stop_pipe"
  rm -f "$stop_pipe"
  (
    (
      read -r line <&4
      exec sleep "$grace"
    ) &
    wait $!
    kill -s XCPU $$
  ) >/dev/null 2>&1 3>&- &
  watchdog=$!
fi
say "phase running"
ran=1
# In the clone: cd by the agent's own sh, after the drop.
(oom_first; exec $reset $drop sh -c 'cd "$0" && exec "$@"' "$home/repo" env PATH="$image_path" "$@") 2>&3 3>&- 4>&- &
pid=$!
exec 3>&-
# From here on the step prints only its report: not sh's own notes on the job (e.g. "Killed").
exec 2>/dev/null
if [ -n "$pending" ]; then forward "$pending"; fi
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
