#!/usr/bin/env bash
# Makes docs/frame.png: the built-in demo profile, framed, on a private Xvfb
# (1024x768, no window manager), after a Ctrl+Shift+C so that the label strip
# shows a clipboard note. Needs what `make demo` needs, plus xdotool and xclip.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o xvmview ./cmd/xvmview
tmp=$(mktemp -d /tmp/xvmview-shot.XXXXXX)
xvfb_pid=""; xvm_pid=""
cleanup() {
  [ -n "$xvm_pid" ] && kill -TERM "$xvm_pid" 2>/dev/null && wait "$xvm_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill -TERM "$xvfb_pid" 2>/dev/null && wait "$xvfb_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
Xvfb -displayfd 3 -nolisten tcp -noreset -screen 0 1024x768x24 3>"$tmp/displayfd" 2>"$tmp/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 100); do [ -s "$tmp/displayfd" ] && break; sleep 0.1; done
export DISPLAY=":$(head -n1 "$tmp/displayfd")" XDG_RUNTIME_DIR="$tmp"
unset XAUTHORITY
./xvmview run demo 2>"$tmp/run.log" &
xvm_pid=$!
for _ in $(seq 100); do ./xvmview ps 2>/dev/null | grep -q demo && break; sleep 0.1; done
sleep 1
# Something in the guest's clipboard, then the copy key over the frame.
id=$(./xvmview ps | awk '$2 == "demo" {print $1}')
n=$(./xvmview ps | awk '$2 == "demo" {print $3}')
printf 'a URL from the guest' | DISPLAY="$n" XAUTHORITY="$tmp/xvmview/$id/client.xauth" xclip -i -selection clipboard
xdotool mousemove 512 384 key ctrl+shift+c
sleep 0.5
geom=$(xwininfo -root -tree | awk '/"\[demo\]/ && /Xephyr"\)/ {print $(NF-1); exit}')   # WxH+X+Y
w=${geom%%x*}; rest=${geom#*x}; h=${rest%%+*}; rest=${rest#*+}; x=${rest%%+*}; y=${rest#*+}
go run ./scripts/hostshot docs/frame.png $((x - 16)) $((y - 16)) $((w + 32)) $((h + 32))
echo "frame-shot: docs/frame.png"
