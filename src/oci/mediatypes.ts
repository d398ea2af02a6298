// OCI and IronCore media types. We write only the current IronCore types; readers of older images
// (and `inspect`) accept the legacy v1alpha1 and onmetal forms too (DOMAIN.md section 3).

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

export const IRONCORE_CONFIG = 'application/vnd.ironcore.image.config.v1+json';

export type LayerRole = 'rootfs' | 'initramfs' | 'kernel' | 'squashfs' | 'uki' | 'iso' | 'disk';

export const IRONCORE_LAYER: Record<LayerRole, string> = {
  rootfs: 'application/vnd.ironcore.image.rootfs',
  initramfs: 'application/vnd.ironcore.image.initramfs',
  kernel: 'application/vnd.ironcore.image.kernel',
  squashfs: 'application/vnd.ironcore.image.squashfs',
  uki: 'application/vnd.ironcore.image.uki',
  iso: 'application/vnd.ironcore.image.iso',
  disk: 'application/vnd.ironcore.image.disk.img',
};

const LEGACY_CONFIGS = [
  'application/vnd.ironcore.image.config.v1alpha1+json',
  'application/vnd.onmetal.image.config.v1alpha1+json',
];

const LEGACY_LAYERS: Record<string, LayerRole> = {
  'application/vnd.ironcore.image.rootfs.v1alpha1.rootfs': 'rootfs',
  'application/vnd.ironcore.image.initramfs.v1alpha1.initramfs': 'initramfs',
  'application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz': 'kernel',
  'application/vnd.ironcore.image.squashfs.v1alpha1.squashfs': 'squashfs',
  'application/vnd.onmetal.image.rootfs.v1alpha1.rootfs': 'rootfs',
  'application/vnd.onmetal.image.initramfs.v1alpha1.initramfs': 'initramfs',
  'application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz': 'kernel',
  'application/vnd.onmetal.image.squashfs.v1alpha1.squashfs': 'squashfs',
};

const CURRENT_LAYERS = new Map<string, LayerRole>(
  Object.entries(IRONCORE_LAYER).map(([role, type]) => [type, role as LayerRole]),
);

/** The role of a layer media type, current or legacy; undefined for a type IronCore does not know. */
export function layerRoleOf(mediaType: string): LayerRole | undefined {
  return CURRENT_LAYERS.get(mediaType) ?? LEGACY_LAYERS[mediaType];
}

export function isIronCoreConfig(mediaType: string): boolean {
  return mediaType === IRONCORE_CONFIG || LEGACY_CONFIGS.includes(mediaType);
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}
