#!/usr/bin/env bash
# Sets up the RabbitMQ peer (Debian 12: rabbitmq-server 3.10.8, classic queues, default
# configuration) for the interop suite and the benchmarks. Loopback only:
#   STOMP 127.0.0.1:61623 and [::1]:61623 (never Stampede's 61613), AMQP 127.0.0.1:5672,
#   Erlang distribution on 127.0.0.1 only.
# Idempotent; run as root. Starts the node if it is not running (`service rabbitmq-server start`
# is a no-op when it is); `--no-start` only installs and configures. The login is guest/guest,
# vhost "/" (guest may connect from loopback only).
set -euo pipefail

START=1
[ "${1:-}" = "--no-start" ] && START=0

if ! command -v rabbitmq-server >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
fi

mkdir -p /etc/rabbitmq
cat > /etc/rabbitmq/rabbitmq.conf <<'CONF'
# Loopback only; STOMP on 61623 so it never collides with Stampede's 61613.
listeners.tcp.1 = 127.0.0.1:5672
stomp.listeners.tcp.1 = 127.0.0.1:61623
loopback_users.guest = true
# IPv6 loopback too (same port), for the guide's IPv6 example
stomp.listeners.tcp.2 = ::1:61623
CONF
grep -q '^NODE_IP_ADDRESS=127.0.0.1' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null || cat >> /etc/rabbitmq/rabbitmq-env.conf <<'CONF'
NODE_IP_ADDRESS=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
# The init script sources this before starting the node: lift the soft open-files limit to the
# hard one, for the 10k-idle-connections benchmark (raising the hard limit needs
# CAP_SYS_RESOURCE, which a container may not have).
if ! grep -q 'stampede/scripts/peers' /etc/default/rabbitmq-server 2>/dev/null; then
  cat >> /etc/default/rabbitmq-server <<'CONF'
# added by stampede/scripts/peers/rabbitmq-setup.sh: soft open-files limit = hard limit
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CONF
fi

rabbitmq-plugins enable --offline rabbitmq_stomp
if [ "$START" = 1 ]; then
  service rabbitmq-server start || true   # 'start' is a no-op if it already runs
  rabbitmqctl await_startup --timeout 60
  echo "RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server): STOMP on 127.0.0.1:61623 and [::1]:61623"
else
  echo "RabbitMQ configured (not started): STOMP on 127.0.0.1:61623"
fi
