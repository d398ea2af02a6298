// A FAT32 EFI system partition holding one file, EFI/BOOT/BOOTX64.EFI (or BOOTAA64.EFI): how firmware finds
// a removable medium's boot loader, and so how the metal UKI boots over HTTP boot. Written here rather than
// with mkfs.vfat and mtools (not on every runner) or QEMU's vvfat (capped at 504 MiB, smaller than a real UKI
// with its squashfs). The file's bytes are streamed into one contiguous cluster run; the rest stays a hole.
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { throwIfAborted } from '../util/errors';
import { noSpaceError, temporaryPathFor } from '../util/files';

const SECTOR = 512;
const SECTORS_PER_CLUSTER = 8;
const CLUSTER = SECTOR * SECTORS_PER_CLUSTER;
const RESERVED_SECTORS = 32;
const FATS = 2;
/** FAT32 needs at least 65525 clusters; a little more so no tool takes it for FAT16. */
const MIN_CLUSTERS = 66_000;
const END_OF_CHAIN = 0x0fffffff;
/** 1980-01-01 00:00: a fixed time, so the same UKI gives the same image. */
const FAT_DATE = (0 << 9) | (1 << 5) | 1;

export type EspArch = 'amd64' | 'arm64';

/** The removable-media boot loader name the UEFI spec gives each architecture. */
export function defaultLoaderName(arch: EspArch): string {
  return arch === 'amd64' ? 'BOOTX64.EFI' : 'BOOTAA64.EFI';
}

function dirEntry(name83: string, attributes: number, cluster: number, size: number): Buffer {
  const e = Buffer.alloc(32);
  e.write(name83.padEnd(11, ' '), 0, 11, 'latin1');
  e[11] = attributes;
  e.writeUInt16LE(cluster >>> 16, 20);
  e.writeUInt16LE(0, 22); // time
  e.writeUInt16LE(FAT_DATE, 24);
  e.writeUInt16LE(FAT_DATE, 16); // created
  e.writeUInt16LE(FAT_DATE, 18); // accessed
  e.writeUInt16LE(cluster & 0xffff, 26);
  e.writeUInt32LE(size, 28);
  return e;
}

function directory(entries: Buffer[]): Buffer {
  const cluster = Buffer.alloc(CLUSTER);
  entries.forEach((entry, i) => entry.copy(cluster, i * 32));
  return cluster;
}

/** `EFI/BOOT/<loader>` holding `source`, as a FAT32 image at `output` (written atomically). */
export async function writeEspImage(
  source: string,
  output: string,
  arch: EspArch,
  signal?: AbortSignal,
): Promise<void> {
  const { size } = await stat(source);
  if (size >= 2 ** 32) throw new Error(`${source} is too large for FAT32 (${size} bytes)`);
  const fileClusters = Math.max(1, Math.ceil(size / CLUSTER));
  // Clusters 2, 3 and 4 are the root, EFI and BOOT folders; the file follows.
  const firstFileCluster = 5;
  const clusters = Math.max(MIN_CLUSTERS, firstFileCluster - 2 + fileClusters + 16);
  const fatSectors = Math.ceil(((clusters + 2) * 4) / SECTOR);
  const dataStart = (RESERVED_SECTORS + FATS * fatSectors) * SECTOR;
  const totalSectors = RESERVED_SECTORS + FATS * fatSectors + clusters * SECTORS_PER_CLUSTER;
  const clusterOffset = (n: number): number => dataStart + (n - 2) * CLUSTER;

  const boot = Buffer.alloc(SECTOR);
  boot.set([0xeb, 0x58, 0x90], 0);
  boot.write('IRONCORE', 3, 8, 'latin1');
  boot.writeUInt16LE(SECTOR, 11);
  boot[13] = SECTORS_PER_CLUSTER;
  boot.writeUInt16LE(RESERVED_SECTORS, 14);
  boot[16] = FATS;
  boot[21] = 0xf8; // fixed disk
  boot.writeUInt16LE(63, 24);
  boot.writeUInt16LE(255, 26);
  boot.writeUInt32LE(totalSectors, 32);
  boot.writeUInt32LE(fatSectors, 36);
  boot.writeUInt32LE(2, 44); // root folder cluster
  boot.writeUInt16LE(1, 48); // FSInfo sector
  boot.writeUInt16LE(6, 50); // backup boot sector
  boot[64] = 0x80;
  boot[66] = 0x29;
  boot.writeUInt32LE(0x1c0e_e5f1, 67); // volume id: fixed, for reproducible bytes
  boot.write('ESP        ', 71, 11, 'latin1');
  boot.write('FAT32   ', 82, 8, 'latin1');
  boot.writeUInt16LE(0xaa55, 510);

  const info = Buffer.alloc(SECTOR);
  info.writeUInt32LE(0x41615252, 0);
  info.writeUInt32LE(0x61417272, 484);
  info.writeUInt32LE(clusters - (firstFileCluster - 2 + fileClusters), 488);
  info.writeUInt32LE(firstFileCluster + fileClusters, 492);
  info.writeUInt32LE(0xaa550000, 508);

  const fat = Buffer.alloc(fatSectors * SECTOR);
  fat.writeUInt32LE(0x0ffffff8, 0);
  fat.writeUInt32LE(END_OF_CHAIN, 4);
  for (const folder of [2, 3, 4]) fat.writeUInt32LE(END_OF_CHAIN, folder * 4);
  for (let i = 0; i < fileClusters; i++) {
    const n = firstFileCluster + i;
    fat.writeUInt32LE(i === fileClusters - 1 ? END_OF_CHAIN : n + 1, n * 4);
  }

  const root = directory([dirEntry('ESP', 0x08, 0, 0), dirEntry('EFI', 0x10, 3, 0)]);
  const efi = directory([
    dirEntry('.', 0x10, 3, 0),
    dirEntry('..', 0x10, 0, 0),
    dirEntry('BOOT', 0x10, 4, 0),
  ]);
  const [stem, extension] = defaultLoaderName(arch).split('.') as [string, string];
  const bootDir = directory([
    dirEntry('.', 0x10, 4, 0),
    dirEntry('..', 0x10, 3, 0),
    dirEntry(stem.padEnd(8, ' ') + extension, 0x20, size === 0 ? 0 : firstFileCluster, size),
  ]);

  const temp = temporaryPathFor(output);
  const fh = await open(temp, 'w', 0o644);
  let copied = 0;
  try {
    await fh.truncate(totalSectors * SECTOR);
    await fh.write(boot, 0, SECTOR, 0);
    await fh.write(info, 0, SECTOR, SECTOR);
    await fh.write(boot, 0, SECTOR, 6 * SECTOR);
    await fh.write(info, 0, SECTOR, 7 * SECTOR);
    for (let i = 0; i < FATS; i++)
      await fh.write(fat, 0, fat.length, (RESERVED_SECTORS + i * fatSectors) * SECTOR);
    await fh.write(root, 0, CLUSTER, clusterOffset(2));
    await fh.write(efi, 0, CLUSTER, clusterOffset(3));
    await fh.write(bootDir, 0, CLUSTER, clusterOffset(4));
    let position = clusterOffset(firstFileCluster);
    for await (const chunk of createReadStream(source, { highWaterMark: 1024 * 1024 })) {
      throwIfAborted(signal);
      const bytes = chunk as Buffer;
      await fh.write(bytes, 0, bytes.length, position);
      position += bytes.length;
      copied += bytes.length;
    }
    await fh.close();
    await rename(temp, output);
  } catch (error) {
    await fh.close().catch(() => {});
    await rm(temp, { force: true });
    throw noSpaceError(error, output, copied, size);
  }
}
