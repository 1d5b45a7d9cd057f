import { SECRET_MOUNT_DIR } from '../constants.js';

/**
 * The root setup step that runs first in every session container (as `/bin/sh -c SCRIPT agentd-setup
 * COMMAND...`). It holds no values: credentials arrive as root-only secret files, which it reads into
 * the environment of the agent's command after creating the agent's user and cloning the repository
 * as that user. It announces its progress with marker lines the runner reads (and hides) until the
 * agent's command starts.
 *
 * Exit codes: 127 when the command does not exist, 126 when it cannot be executed; otherwise the
 * command's own exit code.
 */
export const SETUP_SCRIPT = `set -eu
exec 2>&1
m="$AGENTD_SETUP_MARKER"
say() { printf '%s %s\\n' "$m" "$1"; }
say started
user="$AGENTD_AGENT"
home="/home/$user"
secrets="${SECRET_MOUNT_DIR}"
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --create-home --home-dir "$home" --shell /bin/sh --user-group "$user" >/dev/null
fi
mkdir -p "$home"
chown "$user:" "$home"
export HOME="$home" USER="$user" LOGNAME="$user"
if command -v gosu >/dev/null 2>&1; then drop="gosu"; else drop="setpriv"; fi
as_user() {
  if [ "$drop" = gosu ]; then gosu "$user" "$@"; else setpriv --reuid="$user" --regid="$user" --init-groups "$@"; fi
}
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
  )
  unset tok
else
  as_user git clone --quiet -- "$AGENTD_REPO_URL" "$home/repo"
fi
for n in \${AGENTD_SETUP_CREDENTIALS:-}; do
  v=$(cat "$secrets/$n"; printf x)
  export "$n=\${v%x}"
done
unset v n AGENTD_WORK_UNIT
if [ -n "\${AGENTD_SETUP_WORK_UNIT+x}" ]; then export AGENTD_WORK_UNIT="$AGENTD_SETUP_WORK_UNIT"; fi
unset AGENTD_SETUP_CREDENTIALS AGENTD_SETUP_WORK_UNIT AGENTD_SETUP_MARKER AGENTD_SETUP_TOKEN_ORIGIN
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
say "phase running"
if [ "$drop" = gosu ]; then exec gosu "$user" "$@"; fi
exec setpriv --reuid="$user" --regid="$user" --init-groups "$@"
`;

export const SETUP_ENTRYPOINT = ['/bin/sh', '-c', SETUP_SCRIPT, 'agentd-setup'];
