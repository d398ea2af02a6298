// The Garden Linux side: which release, which assets, and their files on disk.
export {
  resolveRelease,
  defaultApiUrl,
  type GardenLinuxRelease,
  type ReleaseAsset,
  type ResolveReleaseOptions,
} from './release';
export { findFlavorAsset, flavorAssetPattern, assetBaseName, closestNames } from './assets';
export { ARCHES, type Arch, type FlavorKind } from './flavors';
export { compareVersions, parseVersion, validateVersion, isPlainVersion, PLAIN_VERSION } from './versions';
export {
  fetchFlavorArtifacts,
  unpackFlavorArchive,
  type FlavorArtifacts,
  type FetchFlavorOptions,
  type UnpackArchiveOptions,
} from './fetch';
export { efiStubName, efiStubPath, type FlavorFiles } from './unpack';
export { downloadAsset, type DownloadOptions, type RetryOptions } from './download';
export { decompressXz, hasSystemXz } from './xz';
export {
  readTar,
  DEFAULT_TAR_LIMITS,
  Budget,
  type TarEntry,
  type TarLimits,
  type TarMember,
} from './tar/reader';
export { writeSparseFileAtomic } from './tar/sparse';
