// Bootable test images for the boot tests: the real Debian cloud kernel of each arch, an initrd whose /init is
// Debian's static busybox, a real squashfs, and a GPT raw disk with an ESP, generated deterministically. They
// behave as Garden Linux's images do where the boot test looks: the metal initrd mounts `/root.squashfs` from
// the initramfs (UKI) or fetches `gl.url=http...` and checks it against `/root.squashfs.sha256sum` (PXE); the
// system then says `Welcome to ...!` and runs the `_fwcfg` hook script the way `qemu-fw_cfg-script.service`
// does. A `mode` makes an image break in one of the ways the boot test must catch.
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hashFile } from '../../src/util/files';
import { realUkify, toolsDir, type RealArch } from './real-tools';

const exec = promisify(execFile);

/** good: boots and reports running; degraded: a unit failed; the rest fail before userspace is reached. */
export type InitMode = 'good' | 'degraded' | 'panic' | 'emergency' | 'hang' | 'nohook';

export const BOOT_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
  'virtio_console',
  'qemu_fw_cfg',
  'squashfs',
  'loop',
];

export const WELCOME = 'Welcome to IronCore Boot Test';
const EPOCH = '1704067200'; // 2024-01-01, as the sample release's tar members

const INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run /sysroot /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko 2>/dev/null; done
mode=$(cat /etc/boottest/mode)
stay() { while :; do sleep 3600; done; }
emergency() { echo "$1"; echo 'You are in emergency mode. After logging in, type "journalctl -xb" to view system logs.'; stay; }
echo "boottest: mode $mode; cmdline: $(cat /proc/cmdline)"
case $mode in
  panic) echo 'boottest: init exits'; exit 1 ;;
  hang) echo 'boottest: waiting for ever'; stay ;;
  emergency) emergency 'boottest: dropping to the emergency shell' ;;
esac
url=$(sed -n 's/.*gl\\.url=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
sq=
if [ -f /root.squashfs ]; then
  sq=/root.squashfs
elif [ -n "$url" ]; then
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
  wget -q -O /run/root.squashfs "$url" || emergency "boottest: cannot fetch $url"
  (cd /run && sha256sum -c -s /root.squashfs.sha256sum) || emergency 'boottest: root.squashfs checksum mismatch'
  sq=/run/root.squashfs
fi
if [ -n "$sq" ]; then
  mount -t squashfs -o loop,ro "$sq" /sysroot || emergency "boottest: cannot mount $sq"
  . /sysroot/usr/lib/boottest/welcome.sh
else
  echo "${WELCOME} $(cat /etc/boottest/version) (disk)!"
fi
hook=/sys/firmware/qemu_fw_cfg/by_name/opt/gardenlinux/config_script/raw
if [ "$mode" != nohook ] && [ -e "$hook" ]; then
  # As Garden Linux's run-qemu-fw_cfg-script: only a script starting with #! runs, from a copy in /run.
  mkdir -p /run/gardenlinux && cp "$hook" /run/gardenlinux/config_script && chmod +x /run/gardenlinux/config_script
  if head -c 2 /run/gardenlinux/config_script | grep -q '#!'; then /run/gardenlinux/config_script; fi
fi
stay
`;

/** What the hook script asks of systemd, answered as systemd would. */
const SYSTEMCTL = `#!/bin/sh
state=$(cat /etc/boottest/state)
case "$*" in
  *is-system-running*) echo "$state" ;;
  *list-units*) [ "$state" = degraded ] && echo 'boottest-broken.service loaded failed failed Broken on purpose' ;;
esac
exit 0
`;

/** Seeded incompressible bytes (AES-CTR keystream) written at `offset`, in 1 MiB writes. */
async function writeRandom(path: string, size: number, seed: string, offset = 0): Promise<void> {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(1024 * 1024);
  const fh = await open(path, offset > 0 ? 'r+' : 'w');
  try {
    for (let done = 0; done < size;) {
      const n = Math.min(zeros.length, size - done);
      await fh.write(cipher.update(zeros.subarray(0, n)), 0, n, offset + done);
      done += n;
    }
  } finally {
    await fh.close();
  }
}

async function sh(script: string, cwd: string): Promise<void> {
  await exec('bash', ['-c', `set -euo pipefail; ${script}`], { cwd, maxBuffer: 16 * 1024 * 1024 });
}

/** A deterministic newc cpio of `dir`, gzip -n compressed. */
async function cpioGz(dir: string, out: string): Promise<void> {
  await sh(
    `find . -exec touch -h -d @${EPOCH} {} + && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0 | gzip -n -6 > ${JSON.stringify(out)}`,
    dir,
  );
}

export interface BootableArtifacts {
  kernel: string;
  initrd: string;
  squashfs: string;
  /** GPT disk with an ESP holding a UKI of the kernel and a disk-mode initrd. */
  raw: string;
  /** systemd-stub 254 (bookworm-backports): appends the SMBIOS extra command line the boot test passes. */
  stub: string;
}

export interface BootableOptions {
  dir: string;
  arch: RealArch;
  version: string;
  mode?: InitMode;
  /** Extra incompressible bytes in the squashfs (the bench's realistic sizes). */
  squashfsPadding?: number;
  /** Skip the raw disk (metal-only releases). */
  withoutRaw?: boolean;
  /** The bench's realistic disk: grown to this logical size (holes), with `rawData` random bytes past the ESP. */
  rawSize?: number;
  rawData?: number;
}

async function initrdTree(root: string, arch: RealArch, version: string, mode: InitMode): Promise<void> {
  const tools = toolsDir();
  await rm(root, { recursive: true, force: true });
  for (const d of ['bin', 'lib/modules', 'etc/boottest']) await mkdir(join(root, d), { recursive: true });
  await copyFile(join(tools, 'busybox', `busybox-${arch}`), join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const m of BOOT_MODULES)
    await copyFile(
      join(tools, 'kernels', `modules-${arch}`, `${m}.ko`),
      join(root, 'lib/modules', `${m}.ko`),
    );
  await writeFile(join(root, 'lib/modules/order'), `${BOOT_MODULES.join('\n')}\n`);
  await writeFile(join(root, 'init'), INIT, { mode: 0o755 });
  await writeFile(join(root, 'bin/systemctl'), SYSTEMCTL, { mode: 0o755 });
  await writeFile(join(root, 'etc/boottest/mode'), `${mode}\n`);
  await writeFile(join(root, 'etc/boottest/state'), mode === 'degraded' ? 'degraded\n' : 'running\n');
  await writeFile(join(root, 'etc/boottest/version'), `${version}\n`);
}

export async function makeBootableArtifacts(options: BootableOptions): Promise<BootableArtifacts> {
  const { dir, arch, version } = options;
  const mode = options.mode ?? 'good';
  const tools = toolsDir();
  await mkdir(dir, { recursive: true });
  const kernel = join(dir, 'vmlinuz');
  await copyFile(join(tools, 'kernels', `vmlinuz-${arch}`), kernel);
  const stub = join(dir, arch === 'amd64' ? 'linuxx64.efi.stub' : 'linuxaa64.efi.stub');
  await copyFile(
    join(tools, 'stubs-254', arch === 'amd64' ? 'linuxx64.efi.stub' : 'linuxaa64.efi.stub'),
    stub,
  );

  // The squashfs: the system's second stage (here: the welcome line), plus optional bulk.
  const sqRoot = join(dir, 'sqroot');
  await rm(sqRoot, { recursive: true, force: true });
  await mkdir(join(sqRoot, 'usr/lib/boottest'), { recursive: true });
  await writeFile(
    join(sqRoot, 'usr/lib/boottest/welcome.sh'),
    `echo "${WELCOME} ${version} (squashfs from $sq)!"\n`,
  );
  if (options.squashfsPadding) {
    await writeRandom(join(sqRoot, 'usr/lib/boottest/bulk.bin'), options.squashfsPadding, `bulk-${arch}`);
  }
  const squashfs = join(dir, 'root.squashfs');
  await rm(squashfs, { force: true });
  await exec('mksquashfs', [
    sqRoot,
    squashfs,
    '-noappend',
    '-quiet',
    '-no-progress',
    '-all-root',
    '-mkfs-time',
    EPOCH,
    '-all-time',
    EPOCH,
    ...(options.squashfsPadding ? ['-noD', '-noF'] : []),
  ]);
  const digest = (await hashFile(squashfs)).digest.slice('sha256:'.length);

  // The initrd: busybox, modules, /init; and, as Garden Linux's, the squashfs checksum.
  const root = join(dir, 'initrd-root');
  await initrdTree(root, arch, version, mode);
  await writeFile(join(root, 'root.squashfs.sha256sum'), `${digest}  root.squashfs\n`);
  const initrd = join(dir, 'initrd');
  await cpioGz(root, initrd);

  let raw = '';
  if (!options.withoutRaw) {
    raw = await makeRawDisk(dir, arch, version, mode, kernel, stub);
    if (options.rawSize) {
      // Unpartitioned data after the ESP (firmware ignores it), the GPT backup header moved to the new end.
      await sh(`truncate -s ${options.rawSize} disk.raw && sgdisk -e disk.raw >/dev/null`, dir);
      if (options.rawData) await writeRandom(raw, options.rawData, `raw-${arch}`, 64 * 1024 * 1024);
    }
  }
  await rm(sqRoot, { recursive: true, force: true });
  await rm(root, { recursive: true, force: true });
  return { kernel, initrd, squashfs, raw, stub };
}

/** A 64 MiB GPT disk: one 40 MiB ESP with EFI/BOOT/BOOT*.EFI = a UKI (kernel, disk-mode initrd, serial console). */
async function makeRawDisk(
  dir: string,
  arch: RealArch,
  version: string,
  mode: InitMode,
  kernel: string,
  stub: string,
): Promise<string> {
  const root = join(dir, 'disk-initrd-root');
  await initrdTree(root, arch, version, mode);
  const initrd = join(dir, 'disk-initrd');
  await cpioGz(root, initrd);
  await rm(root, { recursive: true, force: true });
  const cmdline = join(dir, 'disk-cmdline');
  await writeFile(cmdline, `console=tty0 console=${arch === 'amd64' ? 'ttyS0,115200' : 'ttyAMA0'}`);
  const osRelease = join(dir, 'disk-os-release');
  await writeFile(osRelease, `ID=boottest\nVERSION_ID=${version}\n`);
  const uki = join(dir, 'disk.efi');
  await exec(realUkify(), [
    'build',
    '--linux',
    kernel,
    '--initrd',
    initrd,
    '--stub',
    stub,
    '--cmdline',
    `@${cmdline}`,
    '--os-release',
    `@${osRelease}`,
    '--output',
    uki,
  ]);
  const raw = join(dir, 'disk.raw');
  const loader = arch === 'amd64' ? 'BOOTX64.EFI' : 'BOOTAA64.EFI';
  await sh(
    [
      `rm -f disk.raw esp.fat`,
      `truncate -s 64M disk.raw`,
      `sgdisk -U 11111111-2222-3333-4444-555555555555 -n 1:2048:+40M -t 1:ef00 -u 1:66666666-7777-8888-9999-000000000000 disk.raw >/dev/null`,
      `mkfs.vfat --invariant -i 1c0ee5f1 -n ESP -C esp.fat 40960 >/dev/null`,
      `touch -d @${EPOCH} disk.efi`,
      `mmd -i esp.fat ::EFI ::EFI/BOOT`,
      `mcopy -m -i esp.fat disk.efi ::EFI/BOOT/${loader}`,
      `dd if=esp.fat of=disk.raw bs=512 seek=2048 conv=notrunc,sparse status=none`,
      `rm -f esp.fat disk.efi disk-initrd disk-cmdline disk-os-release`,
    ].join(' && '),
    dir,
  );
  return raw;
}
