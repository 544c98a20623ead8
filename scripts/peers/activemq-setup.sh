#!/usr/bin/env bash
# Sets up the ActiveMQ peer for the benchmarks (Debian 12: activemq 5.17.2, KahaDB, the package's
# "main" instance). Loopback only, on ports that never collide with Stampede's or RabbitMQ's:
#   STOMP    127.0.0.1:61633  (stomp+nio, up to 20,000 connections)
#   OpenWire 127.0.0.1:61636  (the package default is 61616)
# The Debian package ships no web console (no Jetty, nothing on 8161) and runs with JMX off, so
# nothing else listens. No authentication plugin is configured (the package default): any
# login/passcode is accepted.
#
# Idempotent; run as root. Starts the instance unless it already runs with this configuration
# (a changed configuration restarts it). `--no-start` only installs and configures.
#   bash scripts/peers/activemq-setup.sh [--no-start]
#   service activemq stop        # to stop it again
set -euo pipefail

START=1
[ "${1:-}" = "--no-start" ] && START=0
STOMP_PORT=61633
OPENWIRE_PORT=61636
INSTANCE=main
CONF_DIR=/etc/activemq/instances-available/$INSTANCE
BASE=/var/lib/activemq/$INSTANCE
PIDFILE=/var/run/activemq/$INSTANCE.pid

if ! dpkg -s activemq >/dev/null 2>&1; then
  apt-get update
  # policy-rc.d may refuse the package's own start; we start it below.
  DEBIAN_FRONTEND=noninteractive apt-get install -y activemq
fi

mkdir -p "$CONF_DIR"
# Keep the package's configuration once, for reference.
[ -e "$CONF_DIR/activemq.xml.debian" ] || cp "$CONF_DIR/activemq.xml" "$CONF_DIR/activemq.xml.debian"

NEW_XML=$(mktemp)
cat > "$NEW_XML" <<XML
<!-- Written by stampede/scripts/peers/activemq-setup.sh. The package's original is
     activemq.xml.debian next to this file. The transport connectors and the dead-letter
     strategy differ from it. -->
<beans
  xmlns="http://www.springframework.org/schema/beans"
  xmlns:amq="http://activemq.apache.org/schema/core"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">

    <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer"/>

    <broker xmlns="http://activemq.apache.org/schema/core"
            useJmx="false"
            brokerName="localhost"
            dataDirectory="\${activemq.base}/data">

        <!-- Dead letters of queue Q go to queue DLQ.Q, as in django-stomp's own ActiveMQ test
             setup (its README assumes that name); the default would put every queue's dead
             letters in one ActiveMQ.DLQ. -->
        <destinationPolicy>
            <policyMap>
                <policyEntries>
                    <policyEntry queue=">">
                        <deadLetterStrategy>
                            <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
                        </deadLetterStrategy>
                    </policyEntry>
                </policyEntries>
            </policyMap>
        </destinationPolicy>

        <!-- The default persistence: KahaDB (journal fsync on every synchronous send). -->
        <persistenceAdapter>
            <kahaDB directory="\${activemq.base}/data/kahadb"/>
        </persistenceAdapter>

        <transportConnectors>
            <transportConnector name="openwire" uri="tcp://127.0.0.1:${OPENWIRE_PORT}"/>
            <!-- stomp+nio: ActiveMQ's recommended STOMP transport for many connections (a
                 selector pool instead of a reader thread per socket). maximumConnections: the
                 default of 1000 would refuse the 10k idle-connection scenario. -->
            <transportConnector name="stomp"
                uri="stomp+nio://127.0.0.1:${STOMP_PORT}?maximumConnections=20000&amp;wireFormat.maxFrameSize=104857600"/>
        </transportConnectors>
    </broker>
</beans>
XML

NEW_OPTS=$(mktemp)
{
  cat /usr/share/activemq/activemq-options
  cat <<'OPTS'

# --- added by stampede/scripts/peers/activemq-setup.sh ---
# The package points at /usr/lib/jvm/default-java, which exists only with default-jre; use the
# JDK `java` resolves to when it is missing.
if [ ! -x "${JAVA_HOME}bin/java" ] && command -v java >/dev/null; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")/"
fi
# Sourced by /etc/init.d/activemq before start-stop-daemon: the JVM inherits this limit. The
# 10k-idle-connections benchmark needs more than the usual 1024: lift the soft limit to the hard
# one (raising the hard limit needs CAP_SYS_RESOURCE, which a container may not have).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The package's JVM logs through log4j 1.2, which finds no configuration (the instance's
# log4j2.properties is for upstream's log4j 2) and so logs nothing: give it one. It logs to
# stdout, which goes to ACTIVEMQ_OUT instead of /dev/null.
ACTIVEMQ_OPTS="$ACTIVEMQ_OPTS -Dlog4j.configuration=file:/etc/activemq/instances-available/main/log4j.properties"
ACTIVEMQ_OUT="/var/lib/activemq/main/data/activemq.log"
OPTS
} > "$NEW_OPTS"

NEW_LOG4J=$(mktemp)
cat > "$NEW_LOG4J" <<'LOG4J'
# Written by stampede/scripts/peers/activemq-setup.sh (log4j 1.2, which the Debian package uses).
log4j.rootLogger=INFO, stdout
log4j.logger.org.apache.activemq.spring=WARN
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
LOG4J

changed=0
for pair in "$NEW_XML:$CONF_DIR/activemq.xml" "$NEW_OPTS:$CONF_DIR/options" "$NEW_LOG4J:$CONF_DIR/log4j.properties"; do
  src=${pair%%:*}; dst=${pair#*:}
  if ! cmp -s "$src" "$dst"; then
    install -m 0644 "$src" "$dst"
    changed=1
  fi
  rm -f "$src"
done

ln -sfn "$CONF_DIR" /etc/activemq/instances-enabled/$INSTANCE
install -d -o activemq -g activemq "$BASE" "$BASE/data" "$BASE/tmp"

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

stomp_up() {
  # A STOMP CONNECT answered with CONNECTED.
  python3 - "$STOMP_PORT" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:admin\n\n\0")
    data = b""
    while b"\0" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    sys.exit(0 if data.lstrip().startswith(b"CONNECTED") else 1)
except OSError:
    sys.exit(1)
PY
}

if [ "$START" = 1 ]; then
  if running && [ "$changed" = 1 ]; then
    echo "ActiveMQ configuration changed: restarting"
    service activemq stop || true
  fi
  if ! running; then
    service activemq start || true
  fi
  for _ in $(seq 1 120); do
    if stomp_up; then
      echo "ActiveMQ $(dpkg-query -W -f='${Version}' activemq): STOMP on 127.0.0.1:$STOMP_PORT, OpenWire on 127.0.0.1:$OPENWIRE_PORT (pid $(cat "$PIDFILE"))"
      exit 0
    fi
    sleep 0.5
  done
  echo "ActiveMQ did not accept STOMP on 127.0.0.1:$STOMP_PORT within 60 s; see $BASE/data/activemq.log" >&2
  exit 1
fi
echo "ActiveMQ configured (not started): STOMP on 127.0.0.1:$STOMP_PORT"
