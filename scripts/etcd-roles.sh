#!/bin/sh
# Creates cninet's etcd users and roles and turns etcd's authentication on, so that each node's
# identity (the common name of its client certificate: etcd started with --client-cert-auth takes
# it as the user name) may write only its own keys and read the rest, and only the admin identity
# writes Services, Endpoints, Namespaces, NetworkPolicies and the cluster configuration.
#
#   role cninet-admin       readwrite /cninet/ (everything)      users: ADMIN (default cninet-admin)
#   role cninet-node-NODE   read      /cninet/ (everything)      user:  NODE
#                           readwrite /cninet/v1/nodes/NODE, /cninet/v1/heartbeats/NODE (its own)
#                           readwrite /cninet/v1/pods/, /cninet/v1/podcidrs/ (shared prefixes:
#                                     see "Limits" in tools/agent/README.md)
#
# etcd's own root user is created too (etcd refuses `auth enable` without it). Run it as etcd's
# root (a client certificate with CN root) before auth is on, or again later to add nodes; it is
# idempotent.
#
# usage: scripts/etcd-roles.sh [--admin NAME] [--no-enable] -- ETCDCTL_FLAGS... -- NODE...
#   e.g. scripts/etcd-roles.sh -- --endpoints https://127.0.0.1:2379 --cacert ca.pem \
#          --cert root.pem --key root-key.pem -- node-1 node-2 node-3
set -eu

admin=cninet-admin
enable=1
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    --admin) admin="$2"; shift 2 ;;
    --no-enable) enable=0; shift ;;
    *) echo "etcd-roles.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "etcd-roles.sh: missing -- ETCDCTL_FLAGS... -- NODE..." >&2; exit 2; }
shift
flags=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags="$flags $1"; shift; done
[ $# -gt 0 ] && shift
nodes="$*"

export ETCDCTL_API=3
ctl() {
  # shellcheck disable=SC2086
  etcdctl $flags "$@"
}
# Runs a command whose "already exists" failure means the work is done.
idem() {
  out=$(ctl "$@" 2>&1) || case "$out" in
    *"already exists"*|*"already granted"*) ;;
    *) echo "etcd-roles.sh: etcdctl $*: $out" >&2; exit 1 ;;
  esac
}
user() {
  idem user add "$1" --no-password
}

case "$admin $nodes" in
  *[!A-Za-z0-9.\ -]*) echo "etcd-roles.sh: names must be DNS-1123 (a-z, 0-9, '-', '.')" >&2
                      exit 2 ;;
esac

user root
idem user grant-role root root
idem role add cninet-admin
idem role grant-permission cninet-admin readwrite --prefix=true /cninet/
user "$admin"
idem user grant-role "$admin" cninet-admin
for n in $nodes; do
  role="cninet-node-$n"
  idem role add "$role"
  idem role grant-permission "$role" read --prefix=true /cninet/
  idem role grant-permission "$role" readwrite "/cninet/v1/nodes/$n"
  idem role grant-permission "$role" readwrite "/cninet/v1/heartbeats/$n"
  idem role grant-permission "$role" readwrite --prefix=true /cninet/v1/pods/
  idem role grant-permission "$role" readwrite --prefix=true /cninet/v1/podcidrs/
  user "$n"
  idem user grant-role "$n" "$role"
done
if [ "$enable" = 1 ]; then
  out=$(ctl auth enable 2>&1) || case "$out" in
    *"already enabled"*) ;;
    *) echo "etcd-roles.sh: etcdctl auth enable: $out" >&2; exit 1 ;;
  esac
fi
echo "etcd-roles.sh: admin $admin, nodes:${nodes:+ $nodes}; auth $( [ "$enable" = 1 ] && echo on || echo unchanged)"
