# An emulated cluster on one machine: N nodes, each a network namespace with a hostname of its
# own (node1, node2, ...; a UTS namespace per process started in it), joined by a bridge that
# lives in a namespace of its own. Nothing is added to the machine's own network namespace, and
# no node has a route anywhere but the bridge: traffic stays between the emulated nodes (and
# each node's loopback). Everything is torn down by cluster_down (the tests trap it on EXIT).
#
# Needs root, iproute2 (ip) and util-linux (unshare, nsenter). Sourced by the cluster tests; by
# hand:
#   source tests/cluster/cluster.sh; cluster_up 2 /tmp/c   # node1, node2
#   cluster_exec node1 hostname; cluster_mpirun -np 4 --host node1:2,node2:2 hostname
#   cluster_down
#
# Names: every namespace, link and /etc/netns entry of one cluster starts with $cluster_id
# (gt<pid>), so that two clusters (two test runs) never meet.

cluster_subnet=10.77.0      # the nodes' addresses: $cluster_subnet.K for nodeK
cluster_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# cluster_missing: prints why emulated nodes cannot be made here (nothing when they can).
cluster_missing() {
  [ "$(id -u)" -eq 0 ] || { echo "not root (network namespaces need CAP_SYS_ADMIN)"; return; }
  local p
  for p in ip unshare nsenter; do
    command -v "$p" >/dev/null 2>&1 || { echo "missing: $p (apt-get install iproute2 util-linux)"; return; }
  done
  local probe="gtprobe$$"
  if ! ip netns add "$probe" 2>/dev/null; then echo "cannot make a network namespace (ip netns add)"; return; fi
  if ! ip -n "$probe" link add "${probe}b" type bridge 2>/dev/null; then
    ip netns del "$probe"; echo "cannot make a bridge inside a network namespace"; return
  fi
  if ! ip -n "$probe" link add "${probe}a" type veth peer name "${probe}c" 2>/dev/null; then
    ip netns del "$probe"; echo "cannot make a veth pair inside a network namespace"; return
  fi
  ip netns del "$probe"
  unshare --uts true 2>/dev/null || echo "cannot make a UTS namespace (unshare --uts)"
}

# cluster_up N DIR: makes node1..nodeN; DIR holds the cluster's files (hosts, the rsh agent).
# Each node has a disk of its own: DIR/disk/nodeK, seen on that node as DIR/disk/local (see
# node-exec); what is put there is that node's local copy.
cluster_up() {
  local n=$1 k
  cluster_dir=$2
  cluster_id="gt$$"
  cluster_nodes=()
  mkdir -p "$cluster_dir/disk/local"
  cluster_made_etc_netns=
  [ -d /etc/netns ] || cluster_made_etc_netns=1
  ip netns add "$cluster_id-sw" || return 1
  ip -n "$cluster_id-sw" link add br0 type bridge || return 1
  ip -n "$cluster_id-sw" link set br0 up
  ip -n "$cluster_id-sw" link set lo up
  {
    echo "127.0.0.1 localhost"
    for k in $(seq 1 "$n"); do echo "$cluster_subnet.$k node$k"; done
  } > "$cluster_dir/hosts"
  for k in $(seq 1 "$n"); do
    local ns="$cluster_id-node$k"
    ip netns add "$ns" || return 1
    # The veth pair is made inside the switch namespace, then one end moves to the node.
    ip -n "$cluster_id-sw" link add "p$k" type veth peer name "eth0" netns "$ns" || return 1
    ip -n "$cluster_id-sw" link set "p$k" master br0
    ip -n "$cluster_id-sw" link set "p$k" up
    # IPv4 only: Open MPI's TCP transport otherwise also offers the veth's link-local IPv6
    # address, and jobs it starts under Slurm hang in their first collective.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" addr add "$cluster_subnet.$k/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # `ip netns exec` shows /etc/netns/NAME/hosts as /etc/hosts: the nodes know each other's names.
    mkdir -p "/etc/netns/$ns"
    cp "$cluster_dir/hosts" "/etc/netns/$ns/hosts"
    mkdir -p "$cluster_dir/disk/node$k"
    cluster_nodes+=("node$k")
  done
  # The rsh agent mpirun uses to start its daemons on the other nodes: enters the node instead
  # of ssh'ing to it.
  cat > "$cluster_dir/rsh-agent" <<AGENT
#!/bin/bash
# mpirun's launch agent for the emulated cluster: $0 HOST COMMAND... runs COMMAND on HOST.
host=\$1; shift
exec "$cluster_here/node-exec" "$cluster_id" "$cluster_dir" "\$host" /bin/sh -c "\$*"
AGENT
  chmod +x "$cluster_dir/rsh-agent"
}

# cluster_exec NODE CMD...: runs CMD on NODE (its network, hostname and /etc/hosts).
cluster_exec() {
  "$cluster_here/node-exec" "$cluster_id" "$cluster_dir" "$@"
}

# cluster_mpirun ARGS...: mpirun started on node1, reaching the other nodes through the agent.
cluster_mpirun() {
  local root=()
  [ "$(id -u)" -ne 0 ] || root=(--allow-run-as-root)
  cluster_exec node1 mpirun "${root[@]}" --mca plm_rsh_agent "$cluster_dir/rsh-agent" \
    --mca plm_rsh_no_tree_spawn 1 "$@"
}

# cluster_kill_node NODE: kills every process running on NODE (its network namespace).
cluster_kill_node() {
  local pids
  pids=$(ip netns pids "$cluster_id-$1" 2>/dev/null)
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null
  true
}

# cluster_cut NODE: takes NODE's link down (a network partition), from the switch's side.
cluster_cut() {
  local k=${1#node}
  ip -n "$cluster_id-sw" link set "p$k" down
}

# cluster_down: kills what runs on the nodes and removes every namespace, link and file.
cluster_down() {
  [ -n "${cluster_id:-}" ] || return 0
  local node
  for node in "${cluster_nodes[@]}"; do cluster_kill_node "$node"; done
  for node in "${cluster_nodes[@]}"; do
    ip netns del "$cluster_id-$node" 2>/dev/null
    rm -rf "/etc/netns/$cluster_id-$node"
  done
  ip netns del "$cluster_id-sw" 2>/dev/null
  [ -z "$cluster_made_etc_netns" ] || rmdir /etc/netns 2>/dev/null
  cluster_id=
}
