// UEFI firmware for the VM, found the mkosi way: QEMU's firmware descriptors (/usr/share/qemu/firmware/*.json)
// first, for a non-Secure-Boot flash build of the guest's architecture, then the file names Debian, Ubuntu and
// Fedora ship. The IronCore UKI is unsigned, so Secure Boot builds (and pre-enrolled keys) are never chosen.
import { copyFile, open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PublishError } from '../util/errors';
import type { GuestArch } from './qemu';

export interface Firmware {
  /** Read-only code flash. */
  code: string;
  /** Variable store template: every VM boots from a fresh copy. */
  varsTemplate: string;
  /** aarch64 `virt` wants both flash units exactly 64 MiB; smaller builds are padded in copies. */
  padTo?: number;
}

const DESCRIPTOR_DIRS = ['/etc/qemu/firmware', '/usr/share/qemu/firmware'];
const QEMU_ARCH: Record<GuestArch, string> = { amd64: 'x86_64', arm64: 'aarch64' };
const AARCH64_FLASH = 64 * 1024 * 1024;

const KNOWN: Record<GuestArch, { code: string; vars: string }[]> = {
  amd64: [
    { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
    { code: '/usr/share/OVMF/OVMF_CODE.fd', vars: '/usr/share/OVMF/OVMF_VARS.fd' },
    { code: '/usr/share/edk2/ovmf/OVMF_CODE.fd', vars: '/usr/share/edk2/ovmf/OVMF_VARS.fd' },
    { code: '/usr/share/edk2/x64/OVMF_CODE.4m.fd', vars: '/usr/share/edk2/x64/OVMF_VARS.4m.fd' },
  ],
  arm64: [
    { code: '/usr/share/AAVMF/AAVMF_CODE.fd', vars: '/usr/share/AAVMF/AAVMF_VARS.fd' },
    {
      code: '/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw',
      vars: '/usr/share/edk2/aarch64/vars-template-pflash.raw',
    },
    { code: '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd', vars: '/usr/share/qemu-efi-aarch64/QEMU_VARS.fd' },
  ],
};

export const FIRMWARE_INSTALL_HINT: Record<GuestArch, string> = {
  amd64: 'install OVMF: `sudo apt-get install -y ovmf` (or set install-qemu: true)',
  arm64: 'install AAVMF: `sudo apt-get install -y qemu-efi-aarch64` (or set install-qemu: true)',
};

interface Descriptor {
  'interface-types'?: string[];
  mapping?: {
    device?: string;
    mode?: string;
    executable?: { filename?: string; format?: string };
    'nvram-template'?: { filename?: string; format?: string };
  };
  targets?: { architecture?: string }[];
  features?: string[];
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function fromDescriptors(arch: GuestArch): Promise<{ code: string; vars: string } | undefined> {
  const candidates: { name: string; code: string; vars: string }[] = [];
  for (const dir of DESCRIPTOR_DIRS) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      let d: Descriptor;
      try {
        d = JSON.parse(await readFile(join(dir, name), 'utf8')) as Descriptor;
      } catch {
        continue;
      }
      const features = d.features ?? [];
      const code = d.mapping?.executable?.filename;
      const vars = d.mapping?.['nvram-template']?.filename;
      if (
        !d['interface-types']?.includes('uefi') ||
        d.mapping?.device !== 'flash' ||
        (d.mapping.mode !== undefined && d.mapping.mode !== 'split') ||
        d.mapping.executable?.format !== 'raw' ||
        !d.targets?.some((t) => t.architecture === QEMU_ARCH[arch]) ||
        features.some((f) => ['secure-boot', 'enrolled-keys', 'requires-smm', 'amd-sev-es'].includes(f)) ||
        !code ||
        !vars
      )
        continue;
      if ((await exists(code)) && (await exists(vars))) candidates.push({ name, code, vars });
    }
  }
  // Descriptors are ranked by their file name's number (lower wins), as QEMU's own lookup does.
  candidates.sort((a, b) => a.name.localeCompare(b.name));
  return candidates[0];
}

export async function findFirmware(arch: GuestArch): Promise<Firmware> {
  const found = (await fromDescriptors(arch)) ?? (await findKnown(arch));
  if (!found) {
    throw new PublishError(`no UEFI firmware for ${arch} guests found`, {
      hint: FIRMWARE_INSTALL_HINT[arch],
    });
  }
  return {
    code: found.code,
    varsTemplate: found.vars,
    ...(arch === 'arm64' ? { padTo: AARCH64_FLASH } : {}),
  };
}

async function findKnown(arch: GuestArch): Promise<{ code: string; vars: string } | undefined> {
  for (const pair of KNOWN[arch]) if ((await exists(pair.code)) && (await exists(pair.vars))) return pair;
  return undefined;
}

/**
 * The flash files one VM uses: the code as it is (or a padded copy) and a fresh copy of the variable store,
 * so no VM sees another's boot entries and the system's template is never written.
 */
export async function prepareFlash(firmware: Firmware, dir: string): Promise<{ code: string; vars: string }> {
  const vars = join(dir, 'efivars.fd');
  await copyFile(firmware.varsTemplate, vars);
  let code = firmware.code;
  if (firmware.padTo !== undefined) {
    if ((await stat(code)).size < firmware.padTo) {
      code = join(dir, 'efi-code.fd');
      await copyFile(firmware.code, code);
      await pad(code, firmware.padTo);
    }
    await pad(vars, firmware.padTo);
  }
  return { code, vars };
}

async function pad(path: string, size: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    if ((await fh.stat()).size < size) await fh.truncate(size);
  } finally {
    await fh.close();
  }
}
