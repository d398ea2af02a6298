// The flavors the weekly workflow publishes (DOMAIN.md section 1), with the asset names older
// releases used before the metal -> baremetal platform rename of 2150.0.0.

export type Arch = 'amd64' | 'arm64';
export type FlavorKind = 'kvm' | 'metal';

export const ARCHES: readonly Arch[] = ['amd64', 'arm64'];

export interface FlavorAssetSpec {
  /** OCI image name below the owner, e.g. `gardenlinux/gardener`. */
  image: string;
  /** Tag variant: `kvm` or `metal`. */
  variant: FlavorKind;
  /** Asset cname prefix in current releases. */
  asset: string;
  /** Older names, tried in order when `asset` is absent. */
  alternatives: readonly string[];
}

export const DEFAULT_FLAVOR_ASSETS: readonly FlavorAssetSpec[] = [
  { image: 'gardenlinux', variant: 'metal', asset: 'baremetal_pxe', alternatives: ['metal_pxe'] },
  { image: 'gardenlinux/gardener', variant: 'kvm', asset: 'kvm-gardener_prod', alternatives: [] },
  {
    image: 'gardenlinux/gardener',
    variant: 'metal',
    asset: 'baremetal-gardener_pxe',
    alternatives: ['metal-gardener_pxe', 'metal-gardener_prod_pxe'],
  },
  { image: 'gardenlinux/capi', variant: 'metal', asset: 'baremetal-capi', alternatives: ['metal-capi'] },
];
