// The boot-test phase's choices, without booting: which images, which paths, which versions have the hook,
// and the inputs' validation (one clear error each).
import { describe, expect, it } from 'vitest';
import {
  BootTester,
  hasFwcfgHook,
  parseAcceleratorChoice,
  parseBootTestChoice,
  parseExpect,
  pathsFor,
} from '../../src/pipeline/boot-test';
import { silentLogger } from '../../src/util/logger';

describe('boot-test settings', () => {
  it('the _fwcfg hook exists from 1877.14 and in every 2150.x', () => {
    expect(['1877.0', '1877.13', '1592.9', 'beta_2200.0'].map(hasFwcfgHook)).toEqual([
      false,
      false,
      false,
      false,
    ]);
    expect(['1877.14', '1877.23', '2150.0.0', '2150.9.0'].map(hasFwcfgHook)).toEqual([
      true,
      true,
      true,
      true,
    ]);
  });

  it('metal boots by UKI and PXE, kvm as a disk', () => {
    expect(pathsFor('metal')).toEqual(['uki', 'pxe']);
    expect(pathsFor('kvm')).toEqual(['disk']);
  });

  it('native boots the host arch only, all both, none nothing', () => {
    const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const other = host === 'amd64' ? 'arm64' : 'amd64';
    const tester = (mode: 'none' | 'native' | 'all') =>
      new BootTester({ mode, accelerator: 'auto', logDir: '/tmp' }, '2150.1.0', silentLogger);
    expect([tester('native').wants(host), tester('native').wants(other)]).toEqual([true, false]);
    expect([tester('all').wants(host), tester('all').wants(other)]).toEqual([true, true]);
    expect(tester('none').wants(host)).toBe(false);
  });

  it('inputs are validated with one message each', () => {
    expect(parseBootTestChoice('')).toBe('none');
    expect(parseBootTestChoice(' All ')).toBe('all');
    expect(() => parseBootTestChoice('yes')).toThrow('boot-test "yes" must be none, native or all');
    expect(parseAcceleratorChoice('')).toBe('auto');
    expect(() => parseAcceleratorChoice('hvf')).toThrow('boot-test-accel "hvf" must be auto, kvm or tcg');
    expect(parseExpect('')).toBeUndefined();
    expect(parseExpect('^READY$')!.test('x\nREADY\ny')).toBe(true);
    expect(() => parseExpect('(')).toThrow(/boot-test-expect is not a valid regular expression/);
  });
});
