#!/usr/bin/env bash
# Open MPI's remote launch agent (--mca plm_rsh_agent) for test "hosts" that
# are network namespaces: called as `netns-agent.sh [ssh options] HOST
# COMMAND...`, it runs COMMAND inside the namespace that KPO_NETNS_MAP
# ("ADDRESS=NAMESPACE ...") assigns to HOST, as ssh would run it on a host.
set -euo pipefail

while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
[ $# -ge 2 ] || { echo "netns-agent: usage: netns-agent.sh HOST COMMAND..." >&2; exit 2; }
host=$1
shift
namespace=""
for pair in ${KPO_NETNS_MAP:-}; do
  if [ "${pair%%=*}" = "$host" ]; then namespace=${pair#*=}; fi
done
[ -n "$namespace" ] || { echo "netns-agent: no namespace for host '$host' in KPO_NETNS_MAP" >&2; exit 2; }
exec ip netns exec "$namespace" /bin/sh -c "$*"
