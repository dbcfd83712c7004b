#!/usr/bin/env bash
# Makes sure an MQTT broker answers on 127.0.0.1:1883 (anonymous, for the MQTT push tests):
# starts the machine's Mosquitto if it is stopped, installs Debian's package if there is none.
set -euo pipefail

ready() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }

if ready; then
  exit 0
fi

if ! command -v mosquitto >/dev/null 2>&1; then
  echo "ensure-mosquitto: installing Mosquitto from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi

conf=/etc/mosquitto/conf.d/cashgrid-test.conf
if [ ! -f "$conf" ] && ! grep -qs "listener 1883" /etc/mosquitto/mosquitto.conf; then
  mkdir -p /etc/mosquitto/conf.d
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' > "$conf"
fi
mkdir -p /run/mosquitto && chown mosquitto: /run/mosquitto 2>/dev/null || true
mosquitto -d -c /etc/mosquitto/mosquitto.conf

for _ in $(seq 1 30); do
  ready && exit 0
  sleep 1
done
echo "ensure-mosquitto: no MQTT broker came up on 127.0.0.1:1883" >&2
exit 1
