#!/usr/bin/env bash
# Installs the Debian packages that xvmview's tests and demo need (as root).
# Prints nothing when they are all there already, unless FORCE=1.
set -euo pipefail
pkgs=(xserver-xephyr xvfb xauth openssh-server openssh-client x11-apps x11-utils
      x11-xserver-utils x11-xkb-utils twm xterm xfonts-base iproute2 desktop-file-utils
      libglib2.0-bin procps psmisc util-linux passwd python3-minimal fish)
# login shells a guest user may have: the e2e and quoting tests run xvmview's commands through each
pkgs+=(dash bash zsh ksh mksh csh tcsh)
# nc: the ProxyCommand tests (`ProxyCommand nc %h %p`)
pkgs+=(netcat-openbsd)
# the clipboard tests: xclip owns and reads CLIPBOARD on the host and the nested display
pkgs+=(xclip)
# dbus-daemon: a private session bus for the desktop notification tests
pkgs+=(dbus-daemon)
# the VM tests: libvirtd running a QEMU (TCG) domain booted with this machine's kernel from a
# Debian root file system that mmdebstrap builds (internal/testvm; .ci/run starts libvirtd)
pkgs+=(libvirt-daemon-system qemu-system-x86 mmdebstrap linux-image-amd64 e2fsprogs kmod)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ "${FORCE:-0}" != 1 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps openssh-server's post-install from starting a system sshd:
# the tests run their own and never touch the system one.
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
if [ $had_policy = 0 ]; then rm -f /usr/sbin/policy-rc.d; fi
