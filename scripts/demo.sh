#!/usr/bin/env bash
# make demo: xvmview's main job on its embedded default profile ("demo": a local
# nested display with a window manager and an app).
# - as root, installs the Debian packages that are missing (scripts/install-deps.sh);
# - builds ./xvmview;
# - with a desktop (DISPLAY set): opens the demo window; close it or press Ctrl+C to end;
# - without one: starts a private Xvfb (its own cookie, no TCP), runs the demo in it,
#   saves a PNG screenshot of the nested display, ends the session and prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" = 0 ]; then
  bash scripts/install-deps.sh
fi
go build -o xvmview ./cmd/xvmview

if [ -n "${DISPLAY:-}" ] && [ -z "${XVMVIEW_DEMO_HEADLESS:-}" ]; then
  exec ./xvmview run demo --verbose
fi

for p in Xvfb xauth; do
  command -v "$p" >/dev/null || { echo "demo: $p is missing: run 'make demo' as root, or apt-get install xvfb xauth" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/xvmview-demo.XXXXXX)   # mktemp makes it 0700
xvfb_pid=""; xvm_pid=""
cleanup() {
  [ -n "$xvm_pid" ] && kill -TERM "$xvm_pid" 2>/dev/null && wait "$xvm_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill -TERM "$xvfb_pid" 2>/dev/null && wait "$xvfb_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The private host display's own cookie: a FamilyWild entry (any display number),
# fed to xauth on stdin so it never appears in a command line.
(umask 077; : > "$tmp/host.xauth")
cookie=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
printf 'ffff 0000 0000 0012 4d49542d4d414749432d434f4f4b49452d31 0010 %s\n' "$cookie" \
  | xauth -q -f "$tmp/host.xauth" nmerge -
unset cookie

Xvfb -displayfd 3 -auth "$tmp/host.xauth" -nolisten tcp -screen 0 1280x1024x24 \
  3>"$tmp/displayfd" 2>"$tmp/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 100); do
  [ -s "$tmp/displayfd" ] && break
  kill -0 "$xvfb_pid" 2>/dev/null || { echo "demo: Xvfb failed:" >&2; cat "$tmp/xvfb.log" >&2; exit 1; }
  sleep 0.1
done
n=$(head -n1 "$tmp/displayfd")
[ -n "$n" ] || { echo "demo: Xvfb did not start in 10 s" >&2; exit 1; }
echo "demo: no desktop here, so the demo runs on a private Xvfb :$n"

mkdir -p out
shot="$PWD/out/demo.png"
rm -f "$shot"
DISPLAY=":$n" XAUTHORITY="$tmp/host.xauth" ./xvmview run demo --verbose --screenshot "$shot" &
xvm_pid=$!
for _ in $(seq 300); do
  [ -s "$shot" ] && break
  kill -0 "$xvm_pid" 2>/dev/null || break
  sleep 0.1
done
status=0
kill -TERM "$xvm_pid" 2>/dev/null || true
wait "$xvm_pid" || status=$?
xvm_pid=""
if [ ! -s "$shot" ]; then
  echo "demo: no screenshot was taken (xvmview exited with status $status)" >&2
  exit 1
fi
echo "demo: screenshot of the nested display: $shot"
