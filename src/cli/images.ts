// Where the CLI's commands find an image: `oci:DIR:TAG` (a layout folder), the local store when it holds the
// reference (what `build` and `pull` wrote), else the registry. One place, so inspect, boot, push, pull and
// url resolve references and credentials alike.
import { resolve } from 'node:path';
import { defaultStorePath, LocalStore } from '../oci/layout/local';
import { openLayout } from '../oci/layout/store';
import { parseReference, type Reference } from '../oci/reference';
import { createRegistryStore, type RegistryStore } from '../oci/registry';
import type { Repository } from '../oci/store';
import { printable, PublishError } from '../util/errors';
import { consoleLogger } from '../util/logger';

export interface RegistryFlags {
  username?: string | undefined;
  'insecure-registry'?: boolean | undefined;
  'docker-config-path'?: string | undefined;
}

/** The registry client for `ref`'s host: `--username` with $REGISTRY_PASSWORD, else docker's credentials. */
export function openRegistry(ref: Reference, flags: RegistryFlags, signal: AbortSignal): RegistryStore {
  const password = process.env.REGISTRY_PASSWORD;
  return createRegistryStore({
    registry: ref.registry,
    ...(flags.username && password ? { credentials: { username: flags.username, password } } : {}),
    ...(flags['docker-config-path'] ? { dockerConfig: flags['docker-config-path'] } : {}),
    insecure: flags['insecure-registry'] === true,
    logger: consoleLogger(),
    signal,
  });
}

export function openLocalStore(storePath: string | undefined): Promise<LocalStore> {
  return LocalStore.open(resolve(storePath ?? defaultStorePath()));
}

export interface OpenedImage {
  repo: Repository;
  /** The tag or digest to read in `repo`. */
  tag: string;
  close(): Promise<void>;
}

/** A layout folder, the local store, or the registry, in that order of preference. */
export async function openImage(
  text: string,
  flags: RegistryFlags & { 'store-path'?: string | undefined },
  signal: AbortSignal,
): Promise<OpenedImage> {
  if (text.startsWith('oci:')) {
    const rest = text.slice(4);
    const colon = rest.lastIndexOf(':');
    if (colon <= 0) throw new PublishError(`"${printable(text)}": expected oci:DIR:TAG`);
    return { repo: openLayout(rest.slice(0, colon)), tag: rest.slice(colon + 1), close: async () => {} };
  }
  const ref = parseReference(text);
  // What was built or pulled into the local store is read from there, as ironcore-image does.
  const local = await openLocalStore(flags['store-path']).catch(() => undefined);
  if (local && ref.tag && !ref.digest && (await local.find(ref)))
    return { repo: local.repository(ref), tag: ref.tag, close: async () => {} };
  const registry = openRegistry(ref, flags, signal);
  return {
    repo: registry.repository(ref.repository),
    tag: ref.digest ?? ref.tag ?? 'latest',
    close: () => registry.close(),
  };
}
