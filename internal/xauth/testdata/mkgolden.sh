#!/bin/sh
# Regenerates the golden Xauthority files in this directory with the real
# xauth(1) (Debian 12: xauth 1.1.2, libXau 1.0.9). Run from anywhere:
#   sh internal/xauth/testdata/mkgolden.sh
# The cookies are fixed test values, not secrets. Every entry names its host
# explicitly, so the output does not depend on this machine's host name.
#
#   golden.xauth   binary file written by xauth (its own entry order)
#   golden.nlist   `xauth -f golden.xauth nlist` of it
set -eu
cd "$(dirname "$0")"
f=golden.xauth
rm -f "$f" "$f"-c "$f"-l "$f"-n
umask 077

# Entries xauth can make from display names: Local, Internet, Internet6.
xauth -q -f "$f" <<'CMDS'
add golden/unix:5 MIT-MAGIC-COOKIE-1 00112233445566778899aabbccddeeff
add golden/unix:42.1 MIT-MAGIC-COOKIE-1 0f1e2d3c4b5a69788796a5b4c3d2e1f0
add 10.1.2.3:7 MIT-MAGIC-COOKIE-1 ffeeddccbbaa99887766554433221100
add [fe80::1:2]:8 MIT-MAGIC-COOKIE-1 a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5
add [2001:db8::ff]:65000 MIT-MAGIC-COOKIE-1 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
add 192.0.2.1:0 XDM-AUTHORIZATION-1 000102030405060708090a0b0c0d0e0f1011121314
CMDS

# Families `add` cannot make, via nmerge of numeric lines: Wild (empty
# address, and with an address), LocalHost, Krb5Principal, Netname, an odd
# family, empty number/name/data, and a long data field.
long=$(i=0; while [ $i -lt 300 ]; do printf '%02x' $((i % 256)); i=$((i+1)); done)
xauth -q -f "$f" nmerge - <<LINES
ffff 0000  0001 37 0012 4d49542d4d414749432d434f4f4b49452d31 0010 0123456789abcdef0123456789abcdef
ffff 0004 7f000001 0002 3131 0012 4d49542d4d414749432d434f4f4b49452d31 0010 fedcba9876543210fedcba9876543210
00fc 0009 6c6f63616c686f7374 0001 33 0012 4d49542d4d414749432d434f4f4b49452d31 0010 11111111111111111111111111111111
00fd 0010 7573657240455841 4d504c452e4f5247 0001 34 000e 4d49542d4b4552424552 4f532d35 0004 deadbeef
00fe 000b 756e69782e31303040 7878 0001 39 0009 5355 4e2d4445532d31 0008 0102030405060708
0100 0006 676f6c64656e 0000  0000  0000 
1234 0002 abcd 0003 313233 0003 464f4f 012c $long
ffff 0000  0000  0012 4d49542d4d414749432d434f4f4b49452d31 0010 22222222222222222222222222222222
LINES

xauth -f "$f" nlist > golden.nlist
