// `inspect REF`: what an IronCore image holds (indexes, per-arch manifests, layers by role, the
// command line), read from any store; accepts the legacy media types too.
import { isIndexMediaType, isIronCoreConfig, layerRoleOf } from '../oci/mediatypes';
import type { Repository } from '../oci/store';
import type { ImageIndex, ImageManifest } from '../oci/types';
import { PublishError } from '../util/errors';
import { formatBytes } from '../util/progress';

export async function inspectImage(
  repo: Repository,
  tagOrDigest: string,
  signal?: AbortSignal,
): Promise<string> {
  const lines: string[] = [];
  const top = await repo.getManifest(tagOrDigest, signal);
  if (!top) throw new PublishError(`${repo.location}:${tagOrDigest} does not exist`);
  const parse = <T>(bytes: Uint8Array, what: string): T => {
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
    } catch {
      throw new PublishError(`${what} is not valid JSON`);
    }
  };
  const describeManifest = async (digest: string, bytes: Uint8Array, indent: string): Promise<void> => {
    const manifest = parse<ImageManifest>(bytes, digest);
    const a = manifest.annotations ?? {};
    lines.push(
      `${indent}manifest ${digest}${a.variant ? ` variant=${a.variant}` : ''}${a.architecture ? ` arch=${a.architecture}` : ''}`,
    );
    if (!isIronCoreConfig(manifest.config.mediaType)) {
      lines.push(`${indent}  config ${manifest.config.mediaType} (not an IronCore image)`);
    } else {
      const config = parse<{ commandLine?: string }>(
        await repo.readBlob(manifest.config.digest, signal),
        'config',
      );
      lines.push(`${indent}  command line: ${config.commandLine ?? '(none)'}`);
    }
    for (const layer of manifest.layers) {
      const role = layerRoleOf(layer.mediaType) ?? `unknown media type ${layer.mediaType}`;
      lines.push(
        `${indent}  ${role.padEnd(10)} ${formatBytes(layer.size).padStart(10)}  ${layer.digest}${layer.annotations?.['org.opencontainers.image.title'] ? `  ${layer.annotations['org.opencontainers.image.title']}` : ''}`,
      );
    }
    await describeReferrers(digest, indent);
  };
  /** The artifacts that refer to a manifest (SBOM, os-release, signatures...): type, size and title of each. */
  const describeReferrers = async (digest: string, indent: string): Promise<void> => {
    const referrers = await repo.listReferrers(digest, signal);
    if (referrers.length === 0) return;
    lines.push(`${indent}  referrers (${referrers.length}):`);
    const rows: string[][] = [];
    for (const referrer of referrers) {
      const artifact = await repo.getManifest(referrer.digest, signal);
      const layers = artifact ? (parse<ImageManifest>(artifact.bytes, referrer.digest).layers ?? []) : [];
      const size = layers.reduce((n, l) => n + l.size, 0);
      const title =
        layers.map((l) => l.annotations?.['org.opencontainers.image.title']).find(Boolean) ??
        referrer.annotations?.['org.opencontainers.image.title'] ??
        '';
      rows.push([
        referrer.artifactType ?? referrer.mediaType,
        artifact ? formatBytes(size) : 'MISSING',
        title,
        referrer.digest,
      ]);
    }
    // Sorted by type and title, so the same referrers always print the same.
    rows.sort((a, b) => a[0]!.localeCompare(b[0]!) || a[2]!.localeCompare(b[2]!));
    const width = Math.max(...rows.map((r) => r[0]!.length));
    for (const [type, size, title, d] of rows)
      lines.push(`${indent}    ${type!.padEnd(width)} ${size!.padStart(10)}  ${title}  ${d}`);
  };
  if (isIndexMediaType(top.mediaType)) {
    const index = parse<ImageIndex>(top.bytes, tagOrDigest);
    lines.push(`index ${top.digest} (${index.manifests.length} entries)`);
    const variantsPerArch = new Map<string, Set<string>>();
    for (const m of index.manifests) {
      const arch = m.platform?.architecture ?? '?';
      variantsPerArch.set(arch, (variantsPerArch.get(arch) ?? new Set()).add(m.annotations?.variant ?? '?'));
    }
    const mixed = [...variantsPerArch].filter(([, v]) => v.size > 1).map(([a]) => a);
    if (mixed.length > 0) {
      lines.push(
        `  note: more than one variant for ${mixed.join(', ')}. boot-operator, libvirt-provider and ironcore-image pick an entry by architecture alone and take the first; point them at the <version>-<variant> tag (pull --variant selects here)`,
      );
    }
    for (const [k, v] of Object.entries(index.annotations ?? {})) lines.push(`  ${k}: ${v}`);
    for (const entry of index.manifests) {
      const child = await repo.getManifest(entry.digest, signal);
      if (!child) {
        lines.push(`  ${entry.platform?.architecture ?? '?'}: ${entry.digest} MISSING`);
        continue;
      }
      await describeManifest(entry.digest, child.bytes, '  ');
    }
  } else {
    await describeManifest(top.digest, top.bytes, '');
  }
  return lines.join('\n');
}
