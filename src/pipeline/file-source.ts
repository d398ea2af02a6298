// Manual builds from asset files already on disk (replaces the old hack/build-metal-dev.sh): the
// version, arch and flavor come from the file name, and tags get a `-manual-<8 hex>` suffix derived
// from the files' content, so rebuilding the same files gives the same tags.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { unpackFlavorArchive } from '../gardenlinux';
import type { Architecture } from '../oci/ironcore';
import { PublishError } from '../util/errors';
import type { Flavor } from './flavors';
import type { ArtifactSource } from './sources';

const ASSET_NAME =
  /^(?<cname>.+)-(?<arch>amd64|arm64)-(?<version>[0-9]+\.[0-9]+(?:\.[0-9]+)?)-(?<commit>[0-9a-f]{8})\.tar\.xz$/;

export interface AssetFile {
  path: string;
  cname: string;
  architecture: Architecture;
  version: string;
  commit: string;
}

export function parseAssetFileName(path: string): AssetFile {
  const match = ASSET_NAME.exec(basename(path));
  if (!match?.groups) {
    throw new PublishError(
      `${basename(path)}: not a Garden Linux asset name; expected <flavor>-<arch>-<version>-<commit8>.tar.xz (e.g. baremetal_pxe-amd64-2150.1.0-1a2b3c4d.tar.xz)`,
    );
  }
  const g = match.groups as Record<'cname' | 'arch' | 'version' | 'commit', string>;
  return { path, cname: g.cname, architecture: g.arch as Architecture, version: g.version, commit: g.commit };
}

export interface FileSelection {
  source: ArtifactSource;
  flavors: Flavor[];
  architectures: Architecture[];
  tagSuffix: string;
}

export async function fileSource(paths: string[], flavors: readonly Flavor[]): Promise<FileSelection> {
  if (paths.length === 0) throw new PublishError('--from-file needs at least one asset file');
  const files = paths.map(parseAssetFileName);
  const versions = new Set(files.map((f) => f.version));
  if (versions.size > 1)
    throw new PublishError(`--from-file: the files are of different versions (${[...versions].join(', ')})`);
  const chosen = new Map<Flavor, AssetFile[]>();
  for (const file of files) {
    const flavor = flavors.find((f) => f.asset === file.cname || f.alternatives.includes(file.cname));
    if (!flavor) {
      throw new PublishError(
        `${basename(file.path)}: no flavor has the asset pattern "${file.cname}"; known: ${flavors.map((f) => f.asset).join(', ')}`,
      );
    }
    chosen.set(flavor, [...(chosen.get(flavor) ?? []), file]);
  }
  const architectures = [...new Set(files.map((f) => f.architecture))].sort() as Architecture[];
  for (const [flavor, list] of chosen) {
    const arches = list.map((f) => f.architecture).sort();
    if (arches.join() !== architectures.join()) {
      throw new PublishError(
        `--from-file: ${flavor.asset} is given for ${arches.join(', ')} but the files cover ${architectures.join(', ')}; give every flavor for the same arches`,
      );
    }
  }
  // The suffix names the inputs by file name and size: stable across rebuilds of the same files,
  // without reading gigabytes just to name them (their content is hashed once, while unpacking).
  const identities = await Promise.all(
    files.map(async (f) => {
      const size = await stat(f.path).then(
        (s) => s.size,
        () => {
          throw new PublishError(`${f.path}: no such file`);
        },
      );
      return `${basename(f.path)} ${size}`;
    }),
  );
  const suffix = createHash('sha256').update(identities.sort().join('\n')).digest('hex').slice(0, 8);
  const first = files[0]!;
  return {
    flavors: [...chosen.keys()],
    architectures,
    tagSuffix: `-manual-${suffix}`,
    source: {
      release: { version: first.version, commit: first.commit },
      describe: (flavor, arch) => fileFor(chosen, flavor, arch).path,
      fetch: (flavor, arch, dir, logger, signal, scope) =>
        unpackFlavorArchive({
          ...(scope === 'attachments' ? { attachmentsOnly: true } : {}),
          archive: fileFor(chosen, flavor, arch).path,
          kind: flavor.variant,
          arch,
          dir,
          logger,
          ...(signal ? { signal } : {}),
        }),
    },
  };
}

function fileFor(chosen: Map<Flavor, AssetFile[]>, flavor: Flavor, arch: Architecture): AssetFile {
  const file = chosen.get(flavor)?.find((f) => f.architecture === arch);
  if (!file) throw new PublishError(`no asset file given for ${flavor.asset} ${arch}`);
  return file;
}
