#!/usr/bin/env bash
# Starts virtlogd and libvirtd for the VM tests where no init system runs them (CI: root on
# a fresh Debian 12 machine without systemd). A daemon that runs already keeps running: a
# second one cannot take its pidfile and exits. With systemd, use systemctl instead.
set -euo pipefail
if ! command -v libvirtd >/dev/null; then
  echo "start-libvirtd: libvirtd is not installed (scripts/install-deps.sh installs libvirt-daemon-system)" >&2
  exit 1
fi
# QEMU's console and log go through virtlogd.
virtlogd -d 2>/dev/null || true
libvirtd -d 2>/dev/null || true
for _ in $(seq 100); do
  if virsh -q -c qemu:///system version >/dev/null 2>&1; then exit 0; fi
  sleep 0.1
done
echo "start-libvirtd: libvirtd does not answer on qemu:///system" >&2
exit 1
