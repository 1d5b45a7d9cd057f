#!/usr/bin/env bash
# A bare session: the Podman calls one agentd session minimally needs, with the same container work.
# Usage: baseline-session.sh IMAGE REPO_URL SETUP_SCRIPT_FILE [COMMAND...]   (COMMAND defaults to `true`)
# Env: BENCH_TOKEN (the credential's value), BENCH_CREDS (how many credentials, default 1: BENCH_TOKEN,
# then BENCH_TOKEN_1 ... with the same value), BENCH_PREFIX (object name prefix), BENCH_LABEL (cleanup label).
# Calls: secret create (all values in one bundle on stdin, as agentd makes it), create, start --attach,
# secret rm, rm -f: 5 podman processes whatever BENCH_CREDS is.
# BENCH_FLOOR (not a baseline: lower bounds, the secret's removal left to the bench's cleanup since a
# session removes it beside the run): `kept` makes agentd's own critical path, secret create, `run` (the
# container kept for crash adoption), `rm -f`; `removed` the least any session with its credentials in a
# Podman secret could make, secret create and one `run --rm`.
set -euo pipefail
image=$1 repo=$2
script=$(<"$3")
shift 3
[ $# -gt 0 ] || set -- true
sid=$(printf '%04x%04x%04x%04x' $RANDOM $RANDOM $RANDOM $RANDOM)
name="${BENCH_PREFIX:-bench-base-}demo-$sid"
secret="${BENCH_PREFIX:-bench-base-}$sid-0"
labels=(--label "io.agentd.bench=${BENCH_LABEL:-baseline}" --label "io.agentd.session=$sid" --label io.agentd.agent=demo)
# The bundle (src/runner/credential-bundle.ts): "agentd1 NAME SIZE ...", a newline, the values' bytes.
header="agentd1 BENCH_TOKEN ${#BENCH_TOKEN}"
values="$BENCH_TOKEN"
for ((i = 1; i < ${BENCH_CREDS:-1}; i++)); do
  header="$header BENCH_TOKEN_$i ${#BENCH_TOKEN}"
  values="$values$BENCH_TOKEN"
done
# Podman 4.3 can fail a `secret create` that reads its secrets file while another process rewrites it
# ("unexpected end of JSON input"): try again, as agentd does (PodmanClient.createSecret).
for try in 1 2 3 4 5; do
  printf '%s\n%s' "$header" "$values" | podman secret create "${labels[@]}" "$secret" - >/dev/null 2>&1 && break
  podman secret inspect "$secret" >/dev/null 2>&1 && break
  [ "$try" -lt 5 ] || { echo "secret create failed 5 times" >&2; exit 125; }
  sleep 0.1
done
container=(--name "$name" "${labels[@]}" --pull never --init --user 0:0 --network host \
  --secret "$secret,type=mount,target=/run/secrets/agentd/bundle.0,uid=0,gid=0,mode=0400" \
  --env AGENTD_AGENT=demo --env "AGENTD_SESSION_ID=$sid" --env "AGENTD_REPO_URL=$repo" \
  --env "AGENTD_SETUP_MARKER=@@bench-$sid@@" \
  --entrypoint '["/bin/sh"]' "$image" -c "$script" agentd-setup "$@")
code=0
case "${BENCH_FLOOR:-}" in
  kept)
    podman run "${container[@]}" >/dev/null 2>&1 || code=$?
    podman rm -f --time 0 "$name" >/dev/null
    exit "$code"
    ;;
  removed)
    podman run --rm "${container[@]}" >/dev/null 2>&1 || code=$?
    exit "$code"
    ;;
esac
podman create "${container[@]}" >/dev/null
podman start --attach "$name" >/dev/null 2>&1 || code=$?
podman secret rm "$secret" >/dev/null
podman rm -f --time 0 "$name" >/dev/null
exit "$code"
