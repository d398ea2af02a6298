// `install-qemu: true`: QEMU and UEFI firmware with apt-get where missing, and access to /dev/kvm for the runner
// user the way Garden Linux's CI gives it (a udev rule: hosted x86 runners have /dev/kvm as root:kvm 0660 with
// the runner user outside that group).
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Logger } from '../util/logger';
import { aptInstall, findOnPath, runAsRoot } from '../util/system';
import { findFirmware } from './firmware';
import { hostArch, QEMU_BINARY, QEMU_PACKAGES, type GuestArch } from './qemu';

const KVM_RULE = 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"';

export async function installQemu(
  arches: readonly GuestArch[],
  logger: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const packages: string[] = [];
  for (const arch of arches) {
    const hasQemu = await findOnPath(QEMU_BINARY[arch]);
    const hasFirmware = await findFirmware(arch).then(
      () => true,
      () => false,
    );
    if (!hasQemu) packages.push(QEMU_PACKAGES[arch][0]!);
    if (!hasFirmware) packages.push(QEMU_PACKAGES[arch][1]!);
  }
  if (packages.length > 0) await aptInstall(packages, logger, signal);
  else logger.info(`QEMU and firmware for ${arches.join(', ')} are installed`);

  const native = hostArch();
  if (!native || !arches.includes(native)) return;
  const kvmUsable = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  if (kvmUsable) return;
  const exists = await access('/dev/kvm').then(
    () => true,
    () => false,
  );
  if (!exists) {
    logger.info('/dev/kvm does not exist here: boots are emulated (TCG)');
    return;
  }
  const result = await runAsRoot(
    [
      'sh',
      '-c',
      'cat > /etc/udev/rules.d/99-kvm4all.rules && udevadm control --reload-rules && udevadm trigger --name-match=kvm',
    ],
    signal,
    { input: `${KVM_RULE}\n` },
  );
  if (result?.code === 0) logger.info('gave every user access to /dev/kvm (udev rule 99-kvm4all)');
  else
    logger.warning(
      `cannot give access to /dev/kvm: ${result ? result.stderr.trim() : 'not root and no passwordless sudo'}`,
    );
}
