import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FLAVORS,
  DEFAULT_METAL_CMDLINE,
  commandLineFor,
  parseArchitectures,
  parseFlavors,
} from '../../src/pipeline/flavors';
import { formatTable, planPublication, planTags } from '../../src/pipeline/plan';

describe('flavors input', () => {
  it('defaults to the four flavors of the current workflow', () => {
    const flavors = parseFlavors('');
    expect(flavors.map((f) => `${f.image}:${f.variant}:${f.asset}`)).toEqual([
      'gardenlinux:metal:baremetal_pxe',
      'gardenlinux/gardener:kvm:kvm-gardener_prod',
      'gardenlinux/gardener:metal:baremetal-gardener_pxe',
      'gardenlinux/capi:metal:baremetal-capi',
    ]);
    // kvm differs per arch only in the serial console.
    const kvm = flavors[1]!;
    expect(commandLineFor(kvm.cmdline, 'amd64')).toContain('console=ttyS0,115200 earlyprintk=ttyS0,115200');
    expect(commandLineFor(kvm.cmdline, 'arm64')).toContain(
      'console=ttyAMA0,115200 earlyprintk=ttyAMA0,115200',
    );
    expect(commandLineFor(flavors[0]!.ukiCmdline, 'arm64')).toBe(DEFAULT_METAL_CMDLINE);
  });

  it('parses a YAML list with alternatives and per-arch command lines', () => {
    const flavors = parseFlavors(`
- image: gardenlinux/custom
  variant: kvm
  asset: kvm_dev
  alternatives: [kvm-old]
  cmdline: { amd64: "console=ttyS0", arm64: "console=ttyAMA0" }
- { image: gardenlinux, variant: metal, asset: baremetal_pxe, uki-cmdline: "quiet" }
`);
    expect(flavors[0]).toMatchObject({ image: 'gardenlinux/custom', alternatives: ['kvm-old'] });
    expect(commandLineFor(flavors[0]!.cmdline, 'arm64')).toBe('console=ttyAMA0');
    expect(flavors[1]!.ukiCmdline).toBe('quiet');
    expect(flavors[1]!.cmdline).toBe(DEFAULT_METAL_CMDLINE);
  });

  it.each([
    ['- {image: gl, variant: metal, asset: a, colour: red}', /flavors\[0\]: unknown key "colour"/],
    ['- {image: GardenLinux, variant: metal, asset: a}', /invalid repository name "GardenLinux".*lowercase/],
    ['- {image: "gl/../x", variant: metal, asset: a}', /invalid repository name/],
    ['- {image: gl, variant: vmware, asset: a}', /variant "vmware" is not supported; use kvm or metal/],
    ['- {image: gl, variant: metal, asset: "a;rm -rf /"}', /asset pattern "a;rm -rf \/" may only hold/],
    ['- {image: gl, variant: kvm, asset: a, cmdline: "a\\nb"}', /must be one line/],
    ['[]', /the list is empty/],
    ['image: gl', /expected a YAML list/],
    ['- [unclosed', /not valid YAML/],
    [
      '- {image: gl, variant: metal, asset: a}\n- {image: gl, variant: metal, asset: b}',
      /gl:metal is listed twice/,
    ],
  ])('rejects %j', (text, message) => {
    expect(() => parseFlavors(text)).toThrow(message);
  });

  it('accepts amd64 and arm64 only', () => {
    expect(parseArchitectures('arm64, amd64')).toEqual(['arm64', 'amd64']);
    expect(parseArchitectures('')).toEqual(['amd64', 'arm64']);
    expect(() => parseArchitectures('amd64,riscv64')).toThrow(
      /"riscv64" is not supported; use amd64 and\/or arm64/,
    );
  });
});

describe('plan', () => {
  it('names per-arch, per-variant and combined tags, children first', () => {
    const plan = planPublication({
      version: '2150.1.0',
      namespace: 'ironcore-dev',
      flavors: DEFAULT_FLAVORS,
      architectures: ['amd64', 'arm64'],
    });
    expect(plan.images.map((i) => i.repository)).toEqual([
      'ironcore-dev/gardenlinux',
      'ironcore-dev/gardenlinux/gardener',
      'ironcore-dev/gardenlinux/capi',
    ]);
    const gardener = planTags(plan).filter((t) => t.repository === 'ironcore-dev/gardenlinux/gardener');
    expect(gardener.map((t) => `${t.kind} ${t.tag}`)).toEqual([
      'arch 2150.1.0-kvm-amd64',
      'arch 2150.1.0-kvm-arm64',
      'arch 2150.1.0-metal-amd64',
      'arch 2150.1.0-metal-arm64',
      'variant 2150.1.0-kvm',
      'variant 2150.1.0-metal',
      'combined 2150.1.0',
    ]);
    // 8 arch images, 4 variant indexes, 3 combined indexes.
    expect(planTags(plan)).toHaveLength(15);
  });

  it('appends a tag suffix everywhere and can leave out the combined index', () => {
    const plan = planPublication({
      version: '1877.3',
      namespace: '',
      flavors: [DEFAULT_FLAVORS[0]!],
      architectures: ['arm64'],
      tagSuffix: '-manual-0a1b2c3d',
      combined: false,
    });
    expect(planTags(plan).map((t) => t.tag)).toEqual([
      '1877.3-metal-arm64-manual-0a1b2c3d',
      '1877.3-metal-manual-0a1b2c3d',
    ]);
  });

  it('formats an aligned table', () => {
    expect(formatTable(['a', 'bb'], [['xyz', '1']])).toBe('a    bb\n---  --\nxyz  1');
  });
});
