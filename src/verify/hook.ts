// The script handed to Garden Linux's `_fwcfg` hook (images since 1877.14 / 2150.0.0): its
// qemu-fw_cfg-script.service runs whatever QEMU gives as `opt/gardenlinux/config_script` once the system has
// reached default.target. Ours asks systemd how the boot went, writes the answer to a virtio-serial port the
// host reads, then powers the VM off, so QEMU exits as soon as the verdict is in.

/** fw_cfg name the image's hook looks for. */
export const HOOK_FW_CFG_NAME = 'opt/gardenlinux/config_script';
/** virtio-serial port name the script reports through (`/dev/virtio-ports/<name>` in the guest). */
export const REPORT_PORT = 'io.ironcore.boot-report';

export const HOOK_SCRIPT = `#!/bin/sh
# IronCore publisher boot test: report the system state to the host over virtio-serial, then power off.
port=/dev/virtio-ports/${REPORT_PORT}
if [ ! -e "$port" ]; then
  # Without udev's symlinks: find the port by its name in sysfs.
  for d in /sys/class/virtio-ports/*; do
    [ "$(cat "$d/name" 2>/dev/null)" = "${REPORT_PORT}" ] && port="/dev/\${d##*/}"
  done
fi
exec 3>"$port" || exit 1
trap 'poweroff -f' EXIT
echo started >&3
# Services that cannot work in a VM (as Garden Linux's own QEMU test clears them).
systemctl reset-failed ipmievd.service 'google-*' sshguard.service >/dev/null 2>&1
state=$(timeout 600 systemctl is-system-running --wait 2>/dev/null)
echo "state=\${state:-unknown}" >&3
systemctl list-units --failed --plain --no-legend 2>/dev/null | while read -r unit rest; do
  echo "failed=$unit" >&3
done
echo done >&3
`;

export interface HookReport {
  /** The script started (the image has the hook). */
  started: boolean;
  /** The script finished: `state` and `failed` are final. */
  done: boolean;
  state?: string;
  failedUnits: string[];
}

export function parseHookReport(text: string): HookReport {
  const report: HookReport = { started: false, done: false, failedUnits: [] };
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === 'started') report.started = true;
    else if (line === 'done') report.done = true;
    else if (line.startsWith('state=')) report.state = line.slice(6);
    else if (line.startsWith('failed=')) report.failedUnits.push(line.slice(7));
  }
  return report;
}
