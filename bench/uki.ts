// Benchmark: the native UKI builder against the real ukify 254, same run, same inputs: a real Debian kernel, the
// real systemd-boot stub and an initrd-uki holding a squashfs of realistic size (default 256 MiB of random
// data, uncompressed squashfs so it stays that big). Each repetition runs buildUki end to end (input checks,
// build, read-back verification of every section) with each builder, alternating so the page cache favours
// neither. Target: median native / median ukify <= 0.5.
//   npm run bench:uki [-- --size-mb 256 --reps 5 --arch amd64]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildEmbeddedInitrd, buildUki, type BuildUkiOptions } from '../src/boot';
import { silentLogger } from '../src/util/logger';
import { formatBytes } from '../src/util/progress';
import {
  pathWithTools,
  realKernel,
  realStub,
  realUkify,
  requireCommand,
  type RealArch,
} from '../__tests__/helpers/real-tools';

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: process.env.BENCH_UKI_SIZE_MB ?? '256' },
    reps: { type: 'string', default: process.env.BENCH_UKI_REPS ?? '5' },
    arch: { type: 'string', default: 'amd64' },
  },
});
const sizeMb = Number(values['size-mb']);
const reps = Number(values.reps);
const arch = values.arch as RealArch;
const MiB = 1024 * 1024;
const base = process.env.BENCH_DIR ?? join(tmpdir(), 'ironcore-bench-uki');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The squashfs and initrd-uki are cached between runs (keyed by size): making them is not what we measure. */
async function inputs(): Promise<{ initrdUki: string; osRelease: string }> {
  const dir = join(base, `${sizeMb}m`);
  const initrdUki = join(dir, 'initrd-uki');
  const osRelease = join(dir, 'os-release');
  if (existsSync(join(dir, 'ready'))) return { initrdUki, osRelease };
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'root'), { recursive: true });
  process.stderr.write(`preparing a ${sizeMb} MiB squashfs and its initrd-uki in ${dir} (once)\n`);
  const out = createWriteStream(join(dir, 'root', 'payload.bin'));
  for (let i = 0; i < sizeMb; i++) {
    if (!out.write(randomBytes(MiB))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  // Uncompressed (random data would not shrink anyway) keeps mksquashfs fast and the image at full size.
  execFileSync(
    'mksquashfs',
    [
      join(dir, 'root'),
      join(dir, 'root.squashfs'),
      '-noappend',
      '-all-root',
      '-mkfs-time',
      '0',
      '-noI',
      '-noD',
      '-noF',
      '-noX',
      '-quiet',
      '-no-progress',
    ],
    {
      stdio: 'ignore',
    },
  );
  await rm(join(dir, 'root'), { recursive: true });
  await writeFile(join(dir, 'initrd'), randomBytes(40 * MiB)); // a release initrd is tens of MB
  await buildEmbeddedInitrd({
    initrd: join(dir, 'initrd'),
    squashfs: join(dir, 'root.squashfs'),
    output: initrdUki,
  });
  await writeFile(osRelease, 'ID=gardenlinux\nNAME="Garden Linux"\nVERSION_ID=2150.0.0\n');
  await writeFile(join(dir, 'ready'), '');
  return { initrdUki, osRelease };
}

async function main(): Promise<void> {
  realUkify();
  requireCommand('mksquashfs', 'squashfs-tools');
  process.env.PATH = pathWithTools();
  const { initrdUki, osRelease } = await inputs();
  const out = join(base, 'out');
  await mkdir(out, { recursive: true });
  const common: Omit<BuildUkiOptions, 'builder' | 'output'> = {
    kernel: realKernel(arch),
    initrd: initrdUki,
    stub: realStub(arch),
    cmdline:
      'initrd=initrd gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyS0,115200 console=tty0 earlyprintk=ttyS0,115200 consoleblank=0',
    osRelease,
    arch,
    logger: silentLogger,
  };
  const initrdSize = (await stat(initrdUki)).size;
  process.stdout.write(
    `UKI benchmark (${arch}): kernel ${formatBytes((await stat(common.kernel)).size)}, initrd-uki ${formatBytes(initrdSize)}, ${reps} repetitions\n`,
  );
  const times: Record<'native' | 'ukify', number[]> = { native: [], ukify: [] };
  const digests = new Set<string>();
  for (let i = 0; i < reps; i++) {
    const order: ('native' | 'ukify')[] = i % 2 ? ['ukify', 'native'] : ['native', 'ukify'];
    for (const builder of order) {
      const output = join(out, `uki-${builder}.efi`);
      const started = performance.now();
      const built = await buildUki({ ...common, builder, output });
      const seconds = (performance.now() - started) / 1000;
      times[builder].push(seconds);
      digests.add(built.digest);
      process.stdout.write(
        `  rep ${i + 1} ${builder.padEnd(6)} ${seconds.toFixed(2)} s  ${built.digest.slice(0, 19)}\n`,
      );
      await rm(output, { force: true });
    }
  }
  // For context: the bare `ukify build` process (no checks, no verification), as the workflow runs it.
  const bare: number[] = [];
  await writeFile(join(out, 'cmdline'), common.cmdline);
  for (let i = 0; i < Math.min(reps, 3); i++) {
    const started = performance.now();
    execFileSync(
      'ukify',
      [
        'build',
        '--linux',
        common.kernel,
        '--initrd',
        initrdUki,
        '--stub',
        common.stub,
        '--cmdline',
        `@${join(out, 'cmdline')}`,
        '--os-release',
        `@${osRelease}`,
        '--output',
        join(out, 'bare.efi'),
      ],
      {
        stdio: 'ignore',
      },
    );
    bare.push((performance.now() - started) / 1000);
    await rm(join(out, 'bare.efi'), { force: true });
  }
  process.stdout.write(
    `  bare ukify process (no checks, no verification): median ${median(bare).toFixed(2)} s\n`,
  );
  const native = median(times.native);
  const ukify = median(times.ukify);
  process.stdout.write(
    `median native ${native.toFixed(2)} s, median ukify ${ukify.toFixed(2)} s, ratio native/ukify ${(native / ukify).toFixed(3)} (target <= 0.5)\n` +
      `outputs identical across builders and runs: ${digests.size === 1 ? 'yes' : `NO (${digests.size} digests)`}\n`,
  );
}

await main();
