// An OCI image layout on disk (image-layout spec 1.0): one layout folder per repository under a root,
// so `skopeo inspect oci:<root>/<repository>:<tag>` reads each image. Blobs are written under a
// temporary name and renamed when complete and verified; index.json is replaced atomically too, so a
// crash leaves either the old or the new state, never a half-written file.
import { createReadStream } from 'node:fs';
import { link, mkdir, readFile, rename, stat, writeFile, copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Blob } from '../blob';
import { digestHex, isDigest, sha256Digest } from '../digest';
import { OCI_INDEX } from '../mediatypes';
import { validateRepositoryName, validateTag } from '../reference';
import { referrerEntryOf } from '../referrers';
import type { BlobPushResult, FetchedManifest, ReferrersMode, Repository, Store, StoreStats } from '../store';
import { emptyStats } from '../store';
import type { Descriptor, ImageIndex, SerializedManifest } from '../types';
import { canonicalJson } from '../types';
import { DigestMismatchError, temporaryPathFor, writeFileAtomic } from '../../util/files';
import { PublishError } from '../../util/errors';

const REF_NAME = 'org.opencontainers.image.ref.name';

export function createLayoutStore(root: string): Store {
  const stats = emptyStats();
  const repositories = new Map<string, LayoutRepository>();
  return {
    description: `oci-layout:${root}`,
    stats,
    repository(name) {
      validateRepositoryName(name);
      let repo = repositories.get(name);
      if (!repo) {
        repo = new LayoutRepository(join(root, name), stats, (other) => join(root, other));
        repositories.set(name, repo);
      }
      return repo;
    },
    close: async () => {},
  };
}

/** Opens one layout folder directly (e.g. a layout given on the command line). */
export function openLayout(dir: string): Repository {
  return new LayoutRepository(dir, emptyStats(), () => dir);
}

/**
 * How a repository's tags are named in a shared layout's index.json: the ironcore-image store keeps one layout
 * for every image, each tag under its full reference (`ghcr.io/owner/image:tag`).
 */
export interface RefNaming {
  /** The `org.opencontainers.image.ref.name` of a tag. */
  refName(tag: string): string;
  /** Shown in messages, e.g. `ghcr.io/owner/image` in ~/.ironcore. */
  location: string;
  /** One lock per index.json: views of the same layout must not interleave their updates. */
  lock: { current: Promise<unknown> };
}

export class LayoutRepository implements Repository {
  readonly location: string;
  private ready: Promise<void> | undefined;
  /** index.json updates are serialized: read-modify-write must not interleave. */
  private readonly indexLock: { current: Promise<unknown> };
  private readonly refName: (tag: string) => string;

  constructor(
    private readonly dir: string,
    private readonly stats: StoreStats,
    private readonly dirOf: (repository: string) => string,
    naming?: RefNaming,
  ) {
    this.location = naming?.location ?? `oci:${dir}`;
    this.indexLock = naming?.lock ?? { current: Promise.resolve() };
    this.refName = naming?.refName ?? ((tag) => tag);
  }

  private blobPath(digest: string, dir = this.dir): string {
    return join(dir, 'blobs', 'sha256', digestHex(digest));
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
      if (!(await exists(join(this.dir, 'oci-layout')))) {
        await writeAtomic(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      }
      if (!(await exists(join(this.dir, 'index.json')))) {
        await this.writeIndex({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
      }
    })();
    return this.ready;
  }

  async hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  async pushBlob(
    blob: Blob,
    options: { mountFrom?: string; signal?: AbortSignal } = {},
  ): Promise<BlobPushResult> {
    await this.init();
    const target = this.blobPath(blob.digest);
    const existing = await sizeOf(target);
    if (existing === blob.size) {
      this.stats.blobsExisting++;
      return 'exists';
    }
    if (options.mountFrom) {
      const source = this.blobPath(blob.digest, this.dirOf(options.mountFrom));
      if ((await sizeOf(source)) === blob.size) {
        await linkOrCopy(source, target);
        this.stats.blobsMounted++;
        return 'mounted';
      }
    }
    try {
      await writeFileAtomic(target, blob.open(), {
        expectedDigest: blob.digest,
        ...(blob.sparse ? { keepHoles: true } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (error instanceof DigestMismatchError) {
        throw new PublishError(
          `writing blob ${blob.label} to ${this.location}: its content has digest ${error.actual}, not the expected ${blob.digest} (the file changed since it was hashed?)`,
        );
      }
      throw error;
    }
    this.stats.blobsUploaded++;
    this.stats.bytesUploaded += blob.size;
    return 'uploaded';
  }

  async pushManifest(manifest: SerializedManifest, tags: readonly string[]): Promise<void> {
    tags.forEach(validateTag);
    await this.init();
    const path = this.blobPath(manifest.digest);
    if ((await sizeOf(path)) !== manifest.size) {
      await writeAtomic(path, manifest.bytes);
    }
    this.stats.manifestsPushed++;
    if (tags.length === 0) return;
    const names = tags.map(this.refName);
    await this.updateIndex((index) => {
      const kept = index.manifests.filter((d) => !names.includes(d.annotations?.[REF_NAME] ?? '\0'));
      for (const name of names) {
        kept.push({
          mediaType: manifest.mediaType,
          digest: manifest.digest,
          size: manifest.size,
          annotations: { [REF_NAME]: name },
        });
      }
      return { ...index, manifests: sortIndexEntries(kept) };
    });
  }

  /**
   * Referrers in a layout are what the image-layout spec calls auxiliary descriptors: untagged index.json entries
   * carrying the artifactType and annotations (as oras keeps them), found again by their manifests' `subject`.
   */
  async pushReferrers(
    _subject: Descriptor,
    artifacts: readonly SerializedManifest[],
  ): Promise<ReferrersMode> {
    await this.init();
    for (const artifact of artifacts) {
      const path = this.blobPath(artifact.digest);
      if ((await sizeOf(path)) !== artifact.size) await writeAtomic(path, artifact.bytes);
      this.stats.manifestsPushed++;
    }
    const entries = artifacts.map((a) => referrerEntryOf(a).entry);
    await this.updateIndex((index) => {
      const digests = new Set(entries.map((e) => e.digest));
      const kept = index.manifests.filter((d) => d.annotations?.[REF_NAME] || !digests.has(d.digest));
      return { ...index, manifests: sortIndexEntries([...kept, ...entries]) };
    });
    return 'layout';
  }

  async listReferrers(subject: string): Promise<Descriptor[]> {
    const found: Descriptor[] = [];
    for (const entry of (await this.readIndex())?.manifests ?? []) {
      if (entry.annotations?.[REF_NAME]) continue;
      const bytes = await readFile(this.blobPath(entry.digest)).catch(() => undefined);
      if (!bytes) continue;
      try {
        const { entry: descriptor, subject: of } = referrerEntryOf({
          mediaType: entry.mediaType,
          digest: entry.digest,
          size: entry.size,
          bytes,
        });
        if (of === subject) found.push(descriptor);
      } catch {
        // Not a manifest (an auxiliary blob of another tool): not a referrer.
      }
    }
    return found;
  }

  async getManifest(tagOrDigest: string): Promise<FetchedManifest | undefined> {
    const descriptor = await this.find(tagOrDigest);
    if (!descriptor) return undefined;
    const bytes = await readFile(this.blobPath(descriptor.digest)).catch(() => undefined);
    if (!bytes) return undefined;
    let mediaType = descriptor.mediaType;
    if (!mediaType) {
      try {
        mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? '';
      } catch {
        mediaType = '';
      }
    }
    return { mediaType, digest: descriptor.digest, bytes };
  }

  async resolveTag(tag: string): Promise<string | undefined> {
    return (await this.find(tag))?.digest;
  }

  async openBlob(digest: string): Promise<AsyncIterable<Uint8Array>> {
    const path = this.blobPath(digest);
    if (!(await exists(path))) throw new PublishError(`blob ${digest} not found in ${this.location}`);
    return createReadStream(path, { highWaterMark: 1024 * 1024 });
  }

  async readBlob(digest: string): Promise<Uint8Array> {
    try {
      const bytes = await readFile(this.blobPath(digest));
      if (sha256Digest(bytes) !== digest)
        throw new PublishError(`blob ${digest} in ${this.location} is corrupt`);
      return bytes;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new PublishError(`blob ${digest} not found in ${this.location}`);
      }
      throw error;
    }
  }

  /** The layout's blob file for a digest, for copying a layout elsewhere without reading it into memory. */
  blobFile(digest: string): string {
    return this.blobPath(digest);
  }

  private async find(tagOrDigest: string): Promise<Descriptor | undefined> {
    if (isDigest(tagOrDigest)) {
      return (await exists(this.blobPath(tagOrDigest)))
        ? { mediaType: '', digest: tagOrDigest, size: (await sizeOf(this.blobPath(tagOrDigest))) ?? 0 }
        : undefined;
    }
    const index = await this.readIndex();
    const name = this.refName(tagOrDigest);
    return index?.manifests.find((d) => d.annotations?.[REF_NAME] === name);
  }

  async readIndex(): Promise<ImageIndex | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as ImageIndex;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new PublishError(
        `${join(this.dir, 'index.json')} is not a valid OCI layout index: ${String(error)}`,
      );
    }
  }

  private writeIndex(index: ImageIndex): Promise<void> {
    return writeAtomic(join(this.dir, 'index.json'), canonicalJson(index));
  }

  /** Read-modify-write of index.json, serialized with every other view of this layout. */
  updateIndex(change: (index: ImageIndex) => ImageIndex): Promise<void> {
    const next = this.indexLock.current.then(async () => {
      const index = (await this.readIndex()) ?? {
        schemaVersion: 2 as const,
        mediaType: OCI_INDEX,
        manifests: [],
      };
      await this.writeIndex(change(index));
    });
    this.indexLock.current = next.catch(() => {});
    return next;
  }
}

/** index.json entries sorted by tag, then digest: the same content always gives the same index.json. */
export function sortIndexEntries(entries: Descriptor[]): Descriptor[] {
  const name = (d: Descriptor): string => d.annotations?.[REF_NAME] ?? '';
  return entries.sort(
    (a, b) => name(a).localeCompare(name(b)) || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0),
  );
}

async function exists(path: string): Promise<boolean> {
  return (await sizeOf(path)) !== undefined;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = temporaryPathFor(path);
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** A blob shared between repositories: a hard link costs nothing; copy across file systems. */
async function linkOrCopy(source: string, target: string): Promise<void> {
  const temp = temporaryPathFor(target);
  try {
    await link(source, temp).catch(() => copyFile(source, temp));
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
