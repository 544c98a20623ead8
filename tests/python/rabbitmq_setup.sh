#!/usr/bin/env bash
# Sets up the RabbitMQ peer the interop suite was validated against (Debian 12:
# rabbitmq-server 3.10.8). Loopback only; STOMP on 61623 (never Stampede's 61613).
# Idempotent. Run as root.
set -euo pipefail

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

rabbitmq-plugins enable --offline rabbitmq_stomp
service rabbitmq-server start || true   # 'start' is a no-op if it already runs
rabbitmqctl await_startup --timeout 60

# The OCI-lab test sends base64(token) as the passcode; RabbitMQ compares it as
# plain text, so this user's password IS the base64 text.
OCI_LOGIN='stampede-tenancy/oci-user'
OCI_PASS=$(printf '%s' 'oci-auth-token' | base64)
rabbitmqctl add_user "$OCI_LOGIN" "$OCI_PASS" 2>/dev/null || rabbitmqctl change_password "$OCI_LOGIN" "$OCI_PASS"
rabbitmqctl set_permissions -p / "$OCI_LOGIN" '.*' '.*' '.*'

echo "RabbitMQ STOMP on 127.0.0.1:61623 and [::1]:61623. Run the suite with:"
echo "  STOMP_TEST_BROKER=127.0.0.1:61623 STOMP_TEST_VHOST=/ pytest -v tests/python"
