// The local half of the IronCore image toolkit, with ironcore-image's command names and meanings: `build`
// into the local store (`~/.ironcore`), `list`, `tag` and `delete` (which, unlike the Go tool, also removes the
// blobs nothing references any more). Thin adapters: the manifests come from oci/ironcore (the model the
// Garden Linux pipeline uses), the store is oci/layout.
import { stat, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileBlob, sparseFileBlob } from '../oci/blob';
import {
  ANNOTATION,
  ARCHITECTURES,
  buildArchImage,
  buildIndex,
  type Architecture,
  type BuiltArchImage,
  type IronCoreVariant,
  type LayerInput,
} from '../oci/ironcore';
import { defaultStorePath, LocalStore } from '../oci/layout/local';
import type { LayerRole } from '../oci/mediatypes';
import { parseReference, type Reference } from '../oci/reference';
import { formatTable } from '../pipeline/plan';
import { parseAnnotations } from '../pipeline/run';
import { printable, PublishError, UsageError } from '../util/errors';
import { hashFile } from '../util/files';
import { formatBytes } from '../util/progress';

/** Layer roles a `--config` may name, in the order their layers are written (the pipeline's order). */
const LAYER_ORDER: readonly LayerRole[] = ['rootfs', 'squashfs', 'initramfs', 'kernel', 'uki', 'iso'];
/** The file names the pipeline gives each layer (`org.opencontainers.image.title`). */
export const LAYER_TITLES: Partial<Record<LayerRole, string>> = {
  rootfs: 'rootfs.raw',
  squashfs: 'root.squashfs',
  initramfs: 'initrd',
  kernel: 'vmlinuz',
  uki: 'uki.efi',
  iso: 'image.iso',
};
const CONFIG_KEYS = ['arch', ...LAYER_ORDER, 'cmdline'];

export const BUILD_USAGE = `Usage: ironcore-publish build --tag REF --config arch=A,KEY=FILE,... [--config ...] [options]

Builds an IronCore image of any OS into the local store: one arch manifest per --config (tagged
<tag>-<arch>) and an index over them (tagged <tag>).

--config keys: arch (amd64|arm64, required), rootfs, initramfs, kernel, squashfs, uki, iso (files),
               cmdline (a file whose bytes are the kernel command line)
Options:
  --tag REF             full reference with a tag, e.g. ghcr.io/my-org/my-os:1.0
  --variant V           metal or virtualization (kvm); default: virtualization with a rootfs, else metal
  --annotation K=V      annotation on every manifest and the index (repeatable; --annotations K=V,K=V
                        as ironcore-image spells it works too)
  --store-path DIR      the local store (default ~/.ironcore)

Example:
  ironcore-publish build --tag ghcr.io/my-org/flatcar:4081.2.0 \\
    --config arch=amd64,kernel=vmlinuz,initramfs=initrd.img,cmdline=cmdline.txt \\
    --config arch=arm64,kernel=vmlinuz-arm64,initramfs=initrd-arm64.img,cmdline=cmdline.txt
`;

export const STORE_USAGE = `Usage:
  ironcore-publish list [--store-path DIR]            the images in the local store
  ironcore-publish tag SRC DST [--store-path DIR]     point DST at what SRC names
  ironcore-publish delete REF [--store-path DIR]      remove REF and the blobs nothing else uses

Example:
  ironcore-publish tag ghcr.io/my-org/my-os:1.0 ghcr.io/my-org/my-os:latest
`;

export function taggedReference(text: string, what: string): Reference {
  const ref = parseReference(text);
  if (!ref.tag || ref.digest) {
    throw new PublishError(
      `${what} "${printable(text)}" needs a tag (registry/repository:tag), not a digest or nothing`,
    );
  }
  return ref;
}

interface ArchConfig {
  architecture: Architecture;
  files: Partial<Record<LayerRole, string>>;
  cmdline?: string;
}

/** One `--config` value: `k=v` pairs separated by commas, each key known, `arch` present, files existing. */
export async function parseArchConfig(text: string): Promise<ArchConfig> {
  const values = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new PublishError(`--config "${printable(text)}": "${printable(part)}" is not key=value`);
    const key = part.slice(0, eq).trim();
    if (!CONFIG_KEYS.includes(key))
      throw new PublishError(
        `--config "${printable(text)}": unknown key "${printable(key)}"; known: ${CONFIG_KEYS.join(', ')}`,
      );
    if (values.has(key)) throw new PublishError(`--config "${printable(text)}": "${key}" is given twice`);
    values.set(key, part.slice(eq + 1));
  }
  const arch = values.get('arch');
  if (!arch) throw new PublishError(`--config "${printable(text)}" has no arch= (amd64 or arm64)`);
  if (!ARCHITECTURES.includes(arch as Architecture))
    throw new PublishError(`--config "${printable(text)}": arch "${printable(arch)}" must be amd64 or arm64`);
  const config: ArchConfig = { architecture: arch as Architecture, files: {} };
  for (const [key, value] of values) {
    if (key === 'arch') continue;
    const path = resolve(value);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) throw new PublishError(`--config ${key}=${printable(value)}: no such file`);
    if (key === 'cmdline') config.cmdline = await readFile(path, 'utf8');
    else config.files[key as LayerRole] = path;
  }
  if (Object.keys(config.files).length === 0)
    throw new PublishError(`--config "${printable(text)}" names no layer file (${LAYER_ORDER.join(', ')})`);
  return config;
}

function parseVariant(text: string | undefined, config: ArchConfig): IronCoreVariant {
  if (text === undefined) return config.files.rootfs ? 'virtualization' : 'metal';
  if (text === 'metal') return 'metal';
  if (text === 'virtualization' || text === 'kvm') return 'virtualization';
  throw new PublishError(`--variant "${printable(text)}" must be metal or virtualization (kvm)`);
}

export async function buildCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      tag: { type: 'string' },
      config: { type: 'string', multiple: true, default: [] },
      annotation: { type: 'string', multiple: true, default: [] },
      // ironcore-image's spelling: comma-separated key=value pairs.
      annotations: { type: 'string', multiple: true, default: [] },
      variant: { type: 'string' },
      'store-path': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(BUILD_USAGE);
    return 0;
  }
  if (!values.tag) throw new UsageError('build needs --tag REF (e.g. ghcr.io/my-org/my-os:1.0)');
  const ref = taggedReference(values.tag, '--tag');
  if (values.config.length === 0)
    throw new UsageError('build needs at least one --config arch=...,kernel=...');
  const configs = [];
  for (const text of values.config) configs.push(await parseArchConfig(text));
  const arches = configs.map((c) => c.architecture);
  if (new Set(arches).size !== arches.length)
    throw new PublishError(
      `build: more than one --config for ${arches.find((a, i) => arches.indexOf(a) !== i)}`,
    );
  const annotations = parseAnnotations(
    [...values.annotation, ...values.annotations.flatMap((a) => a.split(','))].join('\n'),
  );
  const store = await LocalStore.open(resolve(values['store-path'] ?? defaultStorePath()));
  const repo = store.repository(ref);
  const built: BuiltArchImage[] = [];
  for (const config of configs) {
    const layers: LayerInput[] = [];
    for (const role of LAYER_ORDER) {
      const path = config.files[role];
      if (!path) continue;
      // A disk image is read once here, noting its data extents: it is stored with its holes and uploaded
      // from its data, the way the pipeline treats the release's .raw.
      const hashed = await hashFile(path, undefined, { extents: role === 'rootfs' });
      const { digest, size } = hashed;
      layers.push({
        role,
        blob: hashed.dataExtents
          ? sparseFileBlob(path, digest, size, hashed.dataExtents)
          : fileBlob(path, digest, size),
        ...(LAYER_TITLES[role] ? { title: LAYER_TITLES[role] } : {}),
      });
    }
    const variant = parseVariant(values.variant, config);
    const image = buildArchImage({
      architecture: config.architecture,
      variant,
      title: annotations[ANNOTATION.title] ?? `${ref.repository}:${ref.tag} ${config.architecture}`,
      ...(config.cmdline !== undefined ? { commandLine: config.cmdline } : {}),
      layers,
      annotations,
    });
    for (const blob of image.blobs) await repo.pushBlob(blob);
    await repo.pushManifest(image.manifest, [`${ref.tag}-${config.architecture}`]);
    process.stdout.write(
      `built ${ref.registry}/${ref.repository}:${ref.tag}-${config.architecture} ${image.manifest.digest}\n`,
    );
    built.push(image);
  }
  const index = buildIndex(
    built.map((b) => ({
      manifest: b.manifest,
      architecture: b.architecture,
      annotations: { [ANNOTATION.variant]: b.variant, [ANNOTATION.architecture]: b.architecture },
    })),
    annotations,
  );
  await repo.pushManifest(index, [ref.tag!]);
  process.stdout.write(`built ${values.tag} ${index.digest} (index of ${built.length})\n`);
  return 0;
}

async function openStore(path: string | undefined): Promise<LocalStore> {
  return LocalStore.open(resolve(path ?? defaultStorePath()));
}

export async function listCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { 'store-path': { type: 'string' } } });
  const store = await openStore(values['store-path']);
  const rows = (await store.list()).map((e) => {
    const colon = e.reference.lastIndexOf(':');
    return [
      e.reference.slice(0, colon),
      e.reference.slice(colon + 1),
      e.descriptor.digest.slice(7, 19),
      e.descriptor.mediaType.includes('index') ? 'index' : 'manifest',
    ];
  });
  process.stdout.write(`${formatTable(['REPOSITORY', 'TAG', 'IMAGE ID', 'TYPE'], rows)}\n`);
  process.stderr.write(
    `${rows.length} tag(s), ${formatBytes(await store.size())} of blobs in ${store.root}\n`,
  );
  return 0;
}

export async function tagCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { 'store-path': { type: 'string' } },
  });
  if (positionals.length !== 2) throw new UsageError('tag takes two references: SRC DST');
  const store = await openStore(values['store-path']);
  const source = taggedReference(positionals[0]!, 'SRC');
  const target = taggedReference(positionals[1]!, 'DST');
  const descriptor = await store.tag(source, target);
  process.stdout.write(`tagged ${positionals[1]} ${descriptor.digest}\n`);
  return 0;
}

export async function deleteCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: { 'store-path': { type: 'string' } },
  });
  if (positionals.length !== 1) throw new UsageError('delete takes one reference');
  const store = await openStore(values['store-path']);
  const removed = await store.delete(taggedReference(positionals[0]!, 'REF'));
  process.stdout.write(`deleted ${positionals[0]} (${removed} blob(s) nothing else referenced)\n`);
  return 0;
}
