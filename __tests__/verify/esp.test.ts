// The FAT32 ESP writer, read back by independent tools: dosfstools' fsck.fat finds nothing to fix, and mtools
// copies the loader out byte for byte. (That firmware boots from it is shown by the UKI boot tests.)
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFile } from '../../src/util/files';
import { writeEspImage } from '../../src/verify';

const exec = promisify(execFile);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'esp-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeEspImage', () => {
  it.each([
    ['amd64', 'BOOTX64.EFI', 5_000_123],
    ['arm64', 'BOOTAA64.EFI', 4096],
    ['amd64', 'BOOTX64.EFI', 1],
  ] as const)(
    '%s: EFI/BOOT/%s of %i bytes passes fsck.fat and reads back equal',
    async (arch, name, size) => {
      const source = join(dir, `loader-${arch}-${size}`);
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 2654435761) >>> 24;
      await writeFile(source, bytes);
      const image = join(dir, `esp-${arch}-${size}.img`);
      await writeEspImage(source, image, arch);
      const fsck = await exec('fsck.fat', ['-n', image]);
      expect(fsck.stdout).toMatch(/4 files/);
      expect(fsck.stdout).not.toMatch(/differ|invalid|[Ff]ree cluster summary wrong/);
      const { stdout } = await exec('mdir', ['-i', image, '-b', '::EFI/BOOT']);
      expect(stdout.trim()).toBe(`::/EFI/BOOT/${name}`);
      const back = join(dir, `back-${arch}-${size}`);
      await exec('mcopy', ['-o', '-i', image, `::EFI/BOOT/${name}`, back]);
      expect((await readFile(back)).equals(bytes)).toBe(true);
      // Sparse: the image allocates little more than the file, whatever its FAT32 minimum size.
      const st = await stat(image);
      expect(st.size).toBeGreaterThan(256 * 1024 * 1024);
      expect(st.blocks * 512).toBeLessThan(size + 2 * 1024 * 1024);
    },
  );

  it('the same file gives the same image bytes', async () => {
    const source = join(dir, 'same');
    await writeFile(source, 'a UKI\n');
    await writeEspImage(source, join(dir, 'a.img'), 'amd64');
    await writeEspImage(source, join(dir, 'b.img'), 'amd64');
    expect((await hashFile(join(dir, 'a.img'))).digest).toBe((await hashFile(join(dir, 'b.img'))).digest);
  });
});
