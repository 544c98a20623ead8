#!/usr/bin/env bash
# Sets up the RabbitMQ peer the interop suite was validated against (Debian 12:
# rabbitmq-server 3.10.8). Loopback only; STOMP on 61623 (never Stampede's 61613).
# Idempotent. Run as root. The broker itself is set up by scripts/peers/rabbitmq-setup.sh (shared
# with scripts/bench-peers); this adds what the suite needs on top.
set -euo pipefail

bash "$(dirname "$0")/../../scripts/peers/rabbitmq-setup.sh"

# The OCI-lab test sends base64(token) as the passcode; RabbitMQ compares it as
# plain text, so this user's password IS the base64 text.
OCI_LOGIN='stampede-tenancy/oci-user'
OCI_PASS=$(printf '%s' 'oci-auth-token' | base64)
rabbitmqctl add_user "$OCI_LOGIN" "$OCI_PASS" 2>/dev/null || rabbitmqctl change_password "$OCI_LOGIN" "$OCI_PASS"
rabbitmqctl set_permissions -p / "$OCI_LOGIN" '.*' '.*' '.*'

echo "RabbitMQ STOMP on 127.0.0.1:61623 and [::1]:61623. Run the suite with:"
echo "  STOMP_TEST_BROKER=127.0.0.1:61623 STOMP_TEST_VHOST=/ pytest -v tests/python"
