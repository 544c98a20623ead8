#!/usr/bin/env bash
# Sets up the RabbitMQ peer (Debian 12: rabbitmq-server 3.10.8, classic queues, default
# configuration) for the interop suite and the benchmarks. Loopback only:
#   STOMP 127.0.0.1:61623 and [::1]:61623 (never Stampede's 61613), STOMP over TLS
#   127.0.0.1:61624 (a CA and server certificate of its own in /etc/rabbitmq/tls, made once with
#   openssl; clients trust /etc/rabbitmq/tls/ca.pem), STOMP over WebSocket (Web-STOMP)
#   ws://127.0.0.1:15674/ws, AMQP 127.0.0.1:5672, Erlang distribution on 127.0.0.1 only.
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
TLS=/etc/rabbitmq/tls
if [ ! -s "$TLS/server.pem" ]; then
  mkdir -p "$TLS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=peers test CA" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$TLS/ext.cnf"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" 2>/dev/null
  chown -R rabbitmq:rabbitmq "$TLS" 2>/dev/null || true
  chmod 0600 "$TLS/server.key" "$TLS/ca.key"
fi
NEW_CONF=$(mktemp)
cat > "$NEW_CONF" <<CONF
# Loopback only; STOMP on 61623 so it never collides with Stampede's 61613.
listeners.tcp.1 = 127.0.0.1:5672
stomp.listeners.tcp.1 = 127.0.0.1:61623
loopback_users.guest = true
# IPv6 loopback too (same port), for the guide's IPv6 example
stomp.listeners.tcp.2 = ::1:61623
# STOMP over TLS, for the TLS benchmark rows.
stomp.listeners.ssl.1 = 127.0.0.1:61624
ssl_options.cacertfile = $TLS/ca.pem
ssl_options.certfile = $TLS/server.pem
ssl_options.keyfile = $TLS/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
# Web-STOMP on its default port, loopback only, for the WebSocket benchmark rows. Binary
# messages out: a text message must be valid UTF-8, and the benchmark's bodies are binary.
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = 15674
web_stomp.ws_frame = binary
CONF
CHANGED=0
cmp -s "$NEW_CONF" /etc/rabbitmq/rabbitmq.conf || CHANGED=1
mv "$NEW_CONF" /etc/rabbitmq/rabbitmq.conf
chmod 0644 /etc/rabbitmq/rabbitmq.conf
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

# A running node does not load a plugin enabled offline: enabling one counts as a change.
grep -q rabbitmq_web_stomp /etc/rabbitmq/enabled_plugins 2>/dev/null || CHANGED=1
rabbitmq-plugins enable --offline rabbitmq_stomp rabbitmq_web_stomp
if [ "$START" = 1 ]; then
  if [ "$CHANGED" = 1 ] && rabbitmqctl -q status >/dev/null 2>&1; then
    # A running node reads its configuration only at start.
    service rabbitmq-server restart || true
  fi
  service rabbitmq-server start || true   # 'start' is a no-op if it already runs
  rabbitmqctl await_startup --timeout 60
  echo "RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server): STOMP on 127.0.0.1:61623 and [::1]:61623, TLS on 127.0.0.1:61624, WebSocket ws://127.0.0.1:15674/ws"
else
  echo "RabbitMQ configured (not started): STOMP on 127.0.0.1:61623"
fi
