// Benchmark: push a >= 1 GiB multi-arch OCI image layout to a local registry with our client, and the
// same layout with `skopeo copy --all` to a second, fresh registry; print both times, the ratio and our
// peak RSS. Our push runs in a child process so its maxRSS is its own.
//   npm run bench:push [-- --layer-mib 256 --layers 4 --concurrency 4 --keep --tsx]
// BENCH_MEMORY=1 prints the child's memory use every 250 ms (the peak is mostly fs read buffers awaiting GC).
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { fileBlob } from '../src/oci/blob';
import type { Blob } from '../src/oci/blob';
import { IRONCORE_CONFIG, IRONCORE_LAYER, OCI_INDEX, OCI_MANIFEST } from '../src/oci/mediatypes';
import { createRegistryStore } from '../src/oci/registry';
import type { Descriptor, SerializedManifest } from '../src/oci/types';
import { serializeManifest } from '../src/oci/types';
import { consoleLogger } from '../src/util/logger';
import { startRegistry } from '../__tests__/helpers/registry';

const TAG = 'bench';
const MiB = 1024 * 1024;

async function writeBlob(layout: string, bytes: Uint8Array): Promise<Descriptor> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { mediaType: 'application/octet-stream', digest, size: bytes.length };
}

/** A random (incompressible) blob of `size` bytes, written and hashed in 4 MiB pieces. */
async function writeRandomBlob(layout: string, size: number): Promise<Descriptor> {
  const tmp = join(layout, 'blobs', 'sha256', `tmp-${process.hrtime.bigint()}`);
  const file = await open(tmp, 'w');
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(4 * MiB);
  for (let done = 0; done < size;) {
    const n = Math.min(buffer.length, size - done);
    randomFillSync(buffer, 0, n);
    hash.update(buffer.subarray(0, n));
    await file.write(buffer, 0, n);
    done += n;
  }
  await file.close();
  const digest = `sha256:${hash.digest('hex')}`;
  const { rename } = await import('node:fs/promises');
  await rename(tmp, join(layout, 'blobs', 'sha256', digest.slice(7)));
  return { mediaType: 'application/octet-stream', digest, size };
}

async function writeManifest(layout: string, manifest: SerializedManifest): Promise<void> {
  await writeFile(join(layout, 'blobs', 'sha256', manifest.digest.slice(7)), manifest.bytes);
}

/** Two arch manifests of `layers` random layers each (one kernel layer shared), an index, tagged `bench`. */
async function generateLayout(dir: string, layerBytes: number, layers: number): Promise<number> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const kernel = await writeRandomBlob(dir, 8 * MiB);
  let total = kernel.size;
  const entries: Descriptor[] = [];
  for (const arch of ['amd64', 'arm64']) {
    const config = await writeBlob(
      dir,
      new TextEncoder().encode(JSON.stringify({ commandLine: `console=tty0 arch=${arch}` })),
    );
    const layerDescriptors: Descriptor[] = [];
    for (let i = 0; i < layers / 2; i++) {
      const layer = await writeRandomBlob(dir, layerBytes);
      total += layer.size + (i === 0 ? config.size : 0);
      layerDescriptors.push({
        ...layer,
        mediaType: i === 0 ? IRONCORE_LAYER.squashfs : IRONCORE_LAYER.rootfs,
      });
    }
    layerDescriptors.push({ ...kernel, mediaType: IRONCORE_LAYER.kernel });
    const manifest = serializeManifest({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { ...config, mediaType: IRONCORE_CONFIG },
      layers: layerDescriptors,
    });
    await writeManifest(dir, manifest);
    entries.push({
      mediaType: OCI_MANIFEST,
      digest: manifest.digest,
      size: manifest.size,
      platform: { architecture: arch, os: 'linux' },
    });
  }
  const index = serializeManifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries });
  await writeManifest(dir, index);
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_INDEX,
          digest: index.digest,
          size: index.size,
          annotations: { 'org.opencontainers.image.ref.name': TAG },
        },
      ],
    }),
  );
  return total;
}

interface LayoutManifest {
  mediaType: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

async function readManifest(
  layout: string,
  d: Descriptor,
): Promise<{ serialized: SerializedManifest; parsed: LayoutManifest }> {
  const bytes = new Uint8Array(await readFile(join(layout, 'blobs', 'sha256', d.digest.slice(7))));
  return {
    serialized: { mediaType: d.mediaType, digest: d.digest, size: bytes.length, bytes },
    parsed: JSON.parse(Buffer.from(bytes).toString()) as LayoutManifest,
  };
}

/** The child: walks index.json → index → manifests → blobs and pushes them with our client. */
async function childPush(
  layout: string,
  registry: string,
  repository: string,
  concurrency: number,
): Promise<void> {
  const logger = consoleLogger({ verbose: false });
  const store = createRegistryStore({ registry, logger, concurrency });
  const repo = store.repository(repository);
  const started = performance.now();
  const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry = top.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === TAG);
  if (!entry) throw new Error(`no ${TAG} in ${layout}`);
  const index = await readManifest(layout, entry);
  const children = await Promise.all((index.parsed.manifests ?? []).map((d) => readManifest(layout, d)));
  const blobs = new Map<string, Blob>();
  for (const child of children) {
    for (const d of [child.parsed.config!, ...(child.parsed.layers ?? [])]) {
      blobs.set(
        d.digest,
        fileBlob(join(layout, 'blobs', 'sha256', d.digest.slice(7)), d.digest, d.size, d.digest.slice(7, 19)),
      );
    }
  }
  // Largest first, so the long uploads overlap instead of one trailing at the end.
  const ordered = [...blobs.values()].sort((a, b) => b.size - a.size);
  if (process.env.BENCH_MEMORY) {
    const timer = setInterval(() => {
      const m = process.memoryUsage();
      process.stderr.write(
        `rss ${(m.rss / 2 ** 20).toFixed(0)} heap ${(m.heapUsed / 2 ** 20).toFixed(0)} external ${(m.external / 2 ** 20).toFixed(0)} arrayBuffers ${(m.arrayBuffers / 2 ** 20).toFixed(0)} MiB\n`,
      );
    }, 250);
    timer.unref();
  }
  await Promise.all(ordered.map((b) => repo.pushBlob(b)));
  await Promise.all(children.map((c) => repo.pushManifest(c.serialized, [])));
  await repo.pushManifest(index.serialized, [TAG]);
  const ms = performance.now() - started;
  await store.close();
  process.stdout.write(
    `${JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS, stats: store.stats })}\n`,
  );
}

function run(cmd: string, args: string[], capture = false): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve({ ms: performance.now() - started, stdout })
        : reject(new Error(`${cmd} exited with ${code}`)),
    );
  });
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'layer-mib': { type: 'string', default: '256' },
      layers: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '4' },
      keep: { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
    },
  });
  if (positionals[0] === 'child') {
    const [, layout, registry, repository, concurrency] = positionals;
    return childPush(layout!, registry!, repository!, Number(concurrency));
  }
  const work = await mkdtemp(join(tmpdir(), 'bench-push-'));
  const layout = join(work, 'layout');
  const registries = await Promise.all([startRegistry(), startRegistry()]);
  try {
    const t0 = performance.now();
    const total = await generateLayout(layout, Number(values['layer-mib']) * MiB, Number(values.layers));
    console.log(
      `layout: ${(total / MiB).toFixed(0)} MiB of blobs in ${((performance.now() - t0) / 1000).toFixed(1)}s at ${layout}`,
    );
    const [ours, theirs] = registries as [(typeof registries)[0], (typeof registries)[0]];

    // The child runs our code bundled, as the action ships it (dist/ is an esbuild bundle): under tsx the
    // on-the-fly compiler would add its own memory to the RSS we measure. --tsx runs it unbundled.
    const script = fileURLToPath(import.meta.url);
    let childArgs: string[];
    if (values.tsx) {
      childArgs = ['--import', 'tsx', script];
    } else {
      const bundle = join(work, 'push-child.mjs');
      await build({
        entryPoints: [script],
        outfile: bundle,
        bundle: true,
        platform: 'node',
        target: 'node24',
        format: 'esm',
        logLevel: 'warning',
        banner: {
          js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
        },
      });
      childArgs = [bundle];
    }
    const child = await run(
      process.execPath,
      [...childArgs, 'child', layout, ours.host, 'fresh-repo', values.concurrency!],
      true,
    );
    const result = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as {
      ms: number;
      maxRssKiB: number;
      stats: { bytesUploaded: number };
    };

    const skopeo = await run('skopeo', [
      'copy',
      '--quiet',
      '--all',
      `oci:${layout}:${TAG}`,
      `docker://${theirs.host}/fresh-repo:${TAG}`,
      '--dest-tls-verify=false',
    ]);

    const oursS = child.ms / 1000;
    const skopeoS = skopeo.ms / 1000;
    console.log(
      `ours:   ${oursS.toFixed(2)}s wall (push itself ${(result.ms / 1000).toFixed(2)}s), ${(total / 1e6 / (result.ms / 1000)).toFixed(0)} MB/s, ${result.stats.bytesUploaded} bytes sent`,
    );
    console.log(`skopeo: ${skopeoS.toFixed(2)}s wall`);
    console.log(`ratio ours/skopeo: ${(oursS / skopeoS).toFixed(2)} (target <= 0.8)`);
    console.log(`our peak RSS: ${(result.maxRssKiB / 1024).toFixed(0)} MiB (target <= 200 MB)`);
  } finally {
    await Promise.all(registries.map((r) => r.stop()));
    if (!values.keep) await rm(work, { recursive: true, force: true });
  }
}

await main();
