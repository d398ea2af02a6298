import { describe, expect, it } from 'vitest';
import {
  closestNames,
  compareVersions,
  findFlavorAsset,
  isPlainVersion,
  validateVersion,
} from '../../src/gardenlinux';
import type { ReleaseAsset } from '../../src/gardenlinux';
import { DEFAULT_FLAVORS } from '../../src/pipeline/flavors';
import { PublishError } from '../../src/util/errors';

const asset = (name: string, id = 1): ReleaseAsset => ({
  id,
  name,
  size: 1,
  url: `u/${id}`,
  browserDownloadUrl: `b/${id}`,
});

describe('versions', () => {
  it('compares numerically with a missing patch as 0', () => {
    expect(compareVersions('2150.0.0', '1877.23')).toBeGreaterThan(0);
    expect(compareVersions('1877.10', '1877.9')).toBeGreaterThan(0);
    expect(compareVersions('1877.2', '1877.2.0')).toBe(0);
    expect(compareVersions('2150.10.0', '2150.9.0')).toBeGreaterThan(0);
  });
  it('treats odd tags as not stable', () => {
    expect(isPlainVersion('1877.23')).toBe(true);
    expect(isPlainVersion('2150.9.0')).toBe(true);
    expect(isPlainVersion('beta_934.1')).toBe(false);
    expect(isPlainVersion('0.9.1')).toBe(false);
    expect(isPlainVersion('2150.0.0-rc1')).toBe(false);
  });
  it.each(['1877.23; rm -rf /', '../1877.1', '1877', '1.2.3.4', '$(id)', '2150.0.0/..', ' '])(
    'refuses %j',
    (v) => {
      expect(() => validateVersion(v)).toThrow(PublishError);
    },
  );
});

describe('findFlavorAsset', () => {
  const release = {
    version: '2150.1.0',
    assets: [
      asset('baremetal_pxe-amd64-2150.1.0-abcdef12.logs.tar.xz', 1),
      asset('baremetal_pxe-amd64-2150.1.0-abcdef12.certs.tar.xz', 2),
      asset('baremetal_pxe-amd64-2150.1.0-abcdef12.tar.xz', 3),
      asset('baremetal_pxe_trustedboot-amd64-2150.1.0-abcdef12.tar.xz', 4),
      asset('kvm-gardener_prod-arm64-2150.1.0-abcdef12.tar.xz', 5),
      asset('kvm-gardener_prod_usi-arm64-2150.1.0-abcdef12.tar.xz', 6),
    ],
  };
  it('never matches the logs/certs companions or longer cnames', () => {
    expect(findFlavorAsset(release, { asset: 'baremetal_pxe' }, 'amd64').id).toBe(3);
    expect(findFlavorAsset(release, { asset: 'kvm-gardener_prod' }, 'arm64').id).toBe(5);
  });
  it('falls back to the pre-2150 metal names', () => {
    const old = {
      version: '1877.23',
      assets: [asset('metal-gardener_prod_pxe-amd64-1877.23-0123abcd.tar.xz', 9)],
    };
    const spec = DEFAULT_FLAVORS.find((f) => f.asset === 'baremetal-gardener_pxe');
    expect(spec).toBeDefined();
    expect(findFlavorAsset(old, spec!, 'amd64').id).toBe(9);
  });
  it('names flavor, arch, version and the closest assets when missing', () => {
    let error: unknown;
    try {
      findFlavorAsset(release, { asset: 'baremetal_pxe' }, 'arm64');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PublishError);
    const e = error as PublishError;
    expect(e.message).toContain('baremetal_pxe');
    expect(e.message).toContain('arm64');
    expect(e.message).toContain('2150.1.0');
    expect(e.hint).toContain('baremetal_pxe-amd64-2150.1.0-abcdef12.tar.xz');
  });
  it('escapes the pattern', () => {
    expect(() => findFlavorAsset(release, { asset: 'baremetal.pxe' }, 'amd64')).toThrow(PublishError);
  });
  it('ranks close names by shared prefix', () => {
    expect(
      closestNames(
        'metal_pxe-amd64-2150.1.0',
        release.assets.map((a) => a.name),
        2,
      ),
    ).toHaveLength(2);
  });
});
