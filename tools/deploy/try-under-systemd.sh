#!/usr/bin/env bash
# Runs tools/deploy/lakehouse-kb.service under a real systemd as PID 1, in a throwaway
# systemd-nspawn container of this machine's own OS (`--volatile=yes`: a tmpfs root with the
# host's /usr read-only, so nothing persists), with its own loopback-only network. Inside, a
# oneshot unit starts the service, writes through it, reads /metrics, waits past WatchdogSec
# (the watchdog pings must keep it alive), kills it with SIGKILL (systemd restarts it and redb
# repairs the file), stops it, and prints the unit's journal. Needs root and systemd-nspawn
# (Debian: apt-get install systemd-container); about a minute.
#
#   cargo build --release && sudo tools/deploy/try-under-systemd.sh target/release/lakehouse-kb
set -euo pipefail

binary="$(realpath "${1:?usage: try-under-systemd.sh PATH/TO/lakehouse-kb}")"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/units" "$work/opt" "$work/out"
cp "$binary" "$work/opt/lakehouse-kb"
sed 's#/usr/local/bin/lakehouse-kb#/opt/kb/lakehouse-kb#' \
    "$repo/tools/deploy/lakehouse-kb.service" >"$work/units/lakehouse-kb.service"
# No first-boot questions on the console of a fresh /etc.
ln -s /dev/null "$work/units/systemd-firstboot.service"
cat >"$work/units/kbtest.service" <<'EOF'
[Unit]
Description=try lakehouse-kb.service
After=basic.target
[Service]
Type=oneshot
ExecStart=/opt/kb/run.sh
EOF
cat >"$work/opt/run.sh" <<'EOF'
#!/bin/bash
exec >/kbout/result.log 2>&1
set -x
echo "lakehouse-kb:x:990:990::/var/lib/lakehouse-kb:/usr/sbin/nologin" >>/etc/passwd
echo "lakehouse-kb:x:990:" >>/etc/group
systemctl start lakehouse-kb.service
systemctl status lakehouse-kb.service --no-pager | head -8
curl -s -X POST http://127.0.0.1:3800/event -H 'content-type: application/json' -d '{"source":"bot"}'
echo
curl -s http://127.0.0.1:3800/metrics | grep -E '^(process_|lakehousekb_build_info)'
systemctl show lakehouse-kb.service -p WatchdogUSec -p WatchdogTimestamp -p StatusText
sleep 40
systemctl show lakehouse-kb.service -p WatchdogTimestamp -p NRestarts -p ActiveState
kill -9 "$(systemctl show -p MainPID --value lakehouse-kb.service)"
set +x
for _ in $(seq 100); do
    [ "$(systemctl show -p NRestarts --value lakehouse-kb.service)" = 1 ] \
        && systemctl is-active --quiet lakehouse-kb.service && break
    sleep 0.1
done
set -x
systemctl show lakehouse-kb.service -p NRestarts -p ActiveState -p StatusText
curl -s http://127.0.0.1:3800/healthz
echo
systemctl stop lakehouse-kb.service
systemctl show lakehouse-kb.service -p ActiveState -p Result
journalctl -u lakehouse-kb.service --no-pager -o cat
systemctl poweroff
EOF
chmod +x "$work/opt/run.sh"
timeout 300 systemd-nspawn --directory=/ --volatile=yes --register=no --keep-unit \
    --private-network --quiet \
    --bind-ro="$work/opt:/opt/kb" --bind-ro="$work/units:/etc/systemd/system" \
    --bind="$work/out:/kbout" --boot -- --unit=kbtest.service >"$work/console.log" 2>&1 || true
cat "$work/out/result.log"
