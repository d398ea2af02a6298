// Flavors: which Garden Linux asset becomes which IronCore image variant. The defaults reproduce the
// current workflow's matrix (DOMAIN.md section 1), with the pre-2150 asset names as alternatives.
import { parse as parseYaml } from 'yaml';
import { ARCHITECTURES, type Architecture, type IronCoreVariant } from '../oci/ironcore';
import { validateRepositoryName } from '../oci/reference';
import { PublishError, printable } from '../util/errors';

export type FlavorVariant = 'kvm' | 'metal';

/** A command line, the same for every arch or one per arch. */
export type CommandLineSpec = string | Partial<Record<Architecture, string>>;

export interface Flavor {
  /** Image name below the namespace, e.g. `gardenlinux/gardener`. */
  image: string;
  variant: FlavorVariant;
  /** Asset pattern, e.g. `kvm-gardener_prod`, matched as `<asset>-<arch>-<version>-<commit8>.tar.xz`. */
  asset: string;
  /** Older names of the same asset, tried in order when `asset` is not in a release. */
  alternatives: string[];
  /** The kernel command line stored in the image config. */
  cmdline: CommandLineSpec;
  /** metal only: the command line embedded in the UKI. */
  ukiCmdline?: CommandLineSpec;
}

const KVM_CMDLINE = (console: string): string =>
  `gl.url=/dev/disk/by-id/virtio-machineboot gl.live=1 gl.ovl=/:tmpfs cgroup_enable=memory swapaccount=1 ignition.firstboot=1 ignition.platform.id=qemu consoleblank=0 console=tty0 console=${console},115200 earlyprintk=${console},115200`;

export const DEFAULT_KVM_CMDLINE: CommandLineSpec = {
  amd64: KVM_CMDLINE('ttyS0'),
  arm64: KVM_CMDLINE('ttyAMA0'),
};

export const DEFAULT_METAL_CMDLINE =
  'initrd=initrd gl.ovl=/:tmpfs gl.live=1 ip=any console=ttyS0,115200 console=tty0 earlyprintk=ttyS0,115200 consoleblank=0 ignition.firstboot=1 ignition.config.url=http://boot.onmetal.de:8083/ignition ignition.config.url.append.uuid=true ignition.platform.id=metal';

export const DEFAULT_FLAVORS: readonly Flavor[] = [
  {
    image: 'gardenlinux',
    variant: 'metal',
    asset: 'baremetal_pxe',
    alternatives: ['metal_pxe'],
    cmdline: DEFAULT_METAL_CMDLINE,
    ukiCmdline: DEFAULT_METAL_CMDLINE,
  },
  {
    image: 'gardenlinux/gardener',
    variant: 'kvm',
    asset: 'kvm-gardener_prod',
    alternatives: [],
    cmdline: DEFAULT_KVM_CMDLINE,
  },
  {
    image: 'gardenlinux/gardener',
    variant: 'metal',
    asset: 'baremetal-gardener_pxe',
    alternatives: ['metal-gardener_pxe', 'metal-gardener_prod_pxe'],
    cmdline: DEFAULT_METAL_CMDLINE,
    ukiCmdline: DEFAULT_METAL_CMDLINE,
  },
  {
    image: 'gardenlinux/capi',
    variant: 'metal',
    asset: 'baremetal-capi',
    alternatives: ['metal-capi'],
    cmdline: DEFAULT_METAL_CMDLINE,
    ukiCmdline: DEFAULT_METAL_CMDLINE,
  },
];

export function ironCoreVariantOf(variant: FlavorVariant): IronCoreVariant {
  return variant === 'kvm' ? 'virtualization' : 'metal';
}

export function commandLineFor(spec: CommandLineSpec | undefined, arch: Architecture): string | undefined {
  if (spec === undefined) return undefined;
  return typeof spec === 'string' ? spec : spec[arch];
}

/** The flavor's unique name in logs and selection (`gardenlinux/gardener:kvm`). */
export function flavorKey(flavor: Pick<Flavor, 'image' | 'variant'>): string {
  return `${flavor.image}:${flavor.variant}`;
}

const KNOWN_KEYS = new Set(['image', 'variant', 'asset', 'alternatives', 'cmdline', 'uki-cmdline']);
const ASSET_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Parses the `flavors` input: a YAML list of `{image, variant, asset, alternatives?, cmdline?, uki-cmdline?}`. */
export function parseFlavors(text: string): Flavor[] {
  if (text.trim() === '') return DEFAULT_FLAVORS.map((f) => ({ ...f }));
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new PublishError(`flavors: not valid YAML: ${(error as Error).message.split('\n')[0]}`, {
      hint: 'Give a YAML list such as: - {image: gardenlinux, variant: metal, asset: baremetal_pxe}',
    });
  }
  if (!Array.isArray(data)) {
    throw new PublishError('flavors: expected a YAML list of flavors', {
      hint: 'Give a YAML list such as: - {image: gardenlinux, variant: metal, asset: baremetal_pxe}',
    });
  }
  if (data.length === 0)
    throw new PublishError(
      'flavors: the list is empty; give at least one flavor (or leave the input empty for the defaults)',
    );
  const flavors = data.map((entry, i) => parseFlavor(entry, i));
  const seen = new Set<string>();
  for (const flavor of flavors) {
    if (seen.has(flavorKey(flavor))) throw new PublishError(`flavors: ${flavorKey(flavor)} is listed twice`);
    seen.add(flavorKey(flavor));
  }
  return flavors;
}

function parseFlavor(entry: unknown, i: number): Flavor {
  const where = `flavors[${i}]`;
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new PublishError(`${where}: expected a mapping with image, variant and asset`);
  }
  const record = entry as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!KNOWN_KEYS.has(key)) {
      throw new PublishError(
        `${where}: unknown key "${printable(key)}"; known keys: ${[...KNOWN_KEYS].join(', ')}`,
      );
    }
  }
  const image = requireString(record, 'image', where);
  validateRepositoryName(image);
  const variant = requireString(record, 'variant', where);
  if (variant !== 'kvm' && variant !== 'metal') {
    throw new PublishError(`${where}: variant "${printable(variant)}" is not supported; use kvm or metal`);
  }
  const asset = requireString(record, 'asset', where);
  const alternatives = record.alternatives === undefined ? [] : record.alternatives;
  if (!Array.isArray(alternatives) || alternatives.some((a) => typeof a !== 'string')) {
    throw new PublishError(`${where}: alternatives must be a list of asset patterns`);
  }
  for (const pattern of [asset, ...(alternatives as string[])]) {
    if (!ASSET_PATTERN.test(pattern)) {
      throw new PublishError(
        `${where}: asset pattern "${printable(pattern)}" may only hold letters, digits, _ . -`,
      );
    }
  }
  const defaults = variant === 'kvm' ? DEFAULT_KVM_CMDLINE : DEFAULT_METAL_CMDLINE;
  const cmdline =
    record.cmdline === undefined ? defaults : parseCommandLine(record.cmdline, `${where}.cmdline`);
  const flavor: Flavor = { image, variant, asset, alternatives: alternatives as string[], cmdline };
  if (record['uki-cmdline'] !== undefined) {
    if (variant !== 'metal') throw new PublishError(`${where}: uki-cmdline applies to metal flavors only`);
    flavor.ukiCmdline = parseCommandLine(record['uki-cmdline'], `${where}.uki-cmdline`);
  } else if (variant === 'metal') {
    flavor.ukiCmdline = DEFAULT_METAL_CMDLINE;
  }
  return flavor;
}

function requireString(record: Record<string, unknown>, key: string, where: string): string {
  const value = record[key];
  if (typeof value !== 'string' || value.trim() === '')
    throw new PublishError(`${where}: "${key}" is required (a string)`);
  return value.trim();
}

function parseCommandLine(value: unknown, where: string): CommandLineSpec {
  const check = (text: unknown, label: string): string => {
    if (typeof text !== 'string') throw new PublishError(`${label}: expected a string`);
    if (/[\n\r\0]/.test(text)) throw new PublishError(`${label}: a kernel command line must be one line`);
    if (text.length > 2047)
      throw new PublishError(`${label}: ${text.length} characters is over the kernel's 2047-character limit`);
    return text;
  };
  if (typeof value === 'string') return check(value, where);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const out: Partial<Record<Architecture, string>> = {};
    for (const [arch, text] of Object.entries(value)) {
      if (!(ARCHITECTURES as readonly string[]).includes(arch)) {
        throw new PublishError(`${where}: "${printable(arch)}" is not an architecture; use amd64 or arm64`);
      }
      out[arch as Architecture] = check(text, `${where}.${arch}`);
    }
    return out;
  }
  throw new PublishError(`${where}: expected a string or a mapping of architecture to command line`);
}

/** Parses `amd64,arm64` (commas or whitespace). */
export function parseArchitectures(text: string): Architecture[] {
  const items = text.split(/[\s,]+/).filter(Boolean);
  if (items.length === 0) return [...ARCHITECTURES];
  const out: Architecture[] = [];
  for (const item of items) {
    if (!(ARCHITECTURES as readonly string[]).includes(item)) {
      throw new PublishError(`architectures: "${printable(item)}" is not supported; use amd64 and/or arm64`);
    }
    if (!out.includes(item as Architecture)) out.push(item as Architecture);
  }
  return out;
}
