#!/bin/bash
# genreport (ISC's DNS compliance tester, not in Debian: build it from
# https://gitlab.isc.org/isc-projects/DNS-Compliance-Testing, one C file:
# `touch config.h && gcc -I. -o genreport genreport.c -lresolv -lcrypto`)
# against meshdns in a throwaway lab: server and client namespaces over a
# veth, Unbound as an upstream answering like the root, the XDP program on
# the server's end. Run as root after `cargo xtask test` has built the
# binaries:
#
#   GENREPORT=/path/to/genreport tests/conformance/genreport.sh false
#
# $1: the zone's `authoritative`, true or false. Every test should say ok.
set -e
AUTH=${1:-false}
GENREPORT=${GENREPORT:?set GENREPORT to the genreport binary}
BIN=$(cd "$(dirname "$0")/../.." && pwd)/target/debug
S=grs$$; C=grc$$; SI=grs$$s; CI=grc$$c
cleanup() { kill $AGENT $UB $NAPI 2>/dev/null || true; sleep 0.5; ip netns del $S 2>/dev/null; ip netns del $C 2>/dev/null; rm -rf /sys/fs/bpf/meshdns-gr$$ ${TMPDIR:-/tmp}/meshdns-gr$$; }
trap cleanup EXIT
mkdir -p ${TMPDIR:-/tmp}/meshdns-gr$$
ip netns add $S; ip netns add $C
ip link add $SI netns $S type veth peer name $CI netns $C
ip -n $S addr add 198.18.0.1/24 dev $SI; ip -n $S addr add 2001:db8::1/64 dev $SI nodad
ip -n $C addr add 198.18.0.2/24 dev $CI; ip -n $C addr add 2001:db8::2/64 dev $CI nodad
ip -n $S link set lo up; ip -n $C link set lo up; ip -n $S link set $SI up; ip -n $C link set $CI up
$BIN/meshdns-lab-xdp --netns $C --iface $CI --program pass > /dev/null 2>&1 & NAPI=$!
ip -n $S addr add 127.0.0.2/8 dev lo 2>/dev/null || true
cat > ${TMPDIR:-/tmp}/meshdns-gr$$/unbound.conf <<UB
server:
  interface: 127.0.0.2
  port: 5353
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "${TMPDIR:-/tmp}/meshdns-gr$$"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "." static
  local-data: ". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400"
  local-data: "www.test. 300 IN A 198.18.5.1"
remote-control:
  control-enable: no
UB
ip netns exec $S unbound -d -c ${TMPDIR:-/tmp}/meshdns-gr$$/unbound.conf & UB=$!
cat > ${TMPDIR:-/tmp}/meshdns-gr$$/services.yaml <<SV
zone: mesh
authoritative: $AUTH
services:
  - name: redis
    vips: [240.0.0.100, "fd00:fd00::100"]
  - name: web
    vips: [240.0.0.101]
  - name: echo-server_echo-example_svc_1010
SV
ip netns exec $S $BIN/meshdns run --iface $SI --config ${TMPDIR:-/tmp}/meshdns-gr$$/services.yaml \
  --listen 198.18.0.1:53 --listen '[2001:db8::1]:53' --upstream 127.0.0.2:5353 \
  --pin-dir /sys/fs/bpf/meshdns-gr$$ --state-dir ${TMPDIR:-/tmp}/meshdns-gr$$ --metrics-addr 127.0.0.1:9153 > ${TMPDIR:-/tmp}/meshdns-gr$$/agent.log 2>&1 & AGENT=$!
for i in $(seq 50); do ip netns exec $C dig +short +time=1 +tries=1 @198.18.0.1 redis.mesh | grep -q 240.0.0.100 && break; sleep 0.2; done
echo "== authoritative: $AUTH; dig redis.mesh: $(ip netns exec $C dig +short @198.18.0.1 redis.mesh)"
printf 'mesh ns.mesh 198.18.0.1\nmesh ns.mesh 2001:db8::1\n' | ip netns exec $C "$GENREPORT" -f
printf 'mesh ns.mesh 198.18.0.1\n' | ip netns exec $C "$GENREPORT" -f -c -t
