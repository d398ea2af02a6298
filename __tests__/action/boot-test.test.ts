// Boot-verified publishing, end to end: the bundled action publishes generated Garden Linux-like releases
// whose kernels are the real Debian ones and whose initrd, squashfs and raw disk boot to userspace, into a
// real docker-registry, and boots every arch image under real QEMU and UEFI firmware before writing a tag.
// Bad images fail the run with the right reason and leave zero tags; a re-run once fixed publishes.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubApiServer, type GitHubApiServer } from '../../src/sample/github-server';
import { createSamplePeStub } from '../../src/sample/pe-stub';
import { generateSampleRelease, type SampleArch } from '../../src/sample/release';
import type { BootTestRecord } from '../../src/pipeline/boot-test';
import { errorLines, runAction } from '../helpers/action';
import { makeBootableArtifacts, type InitMode } from '../helpers/bootable';
import { startRegistry, type RunningRegistry } from '../helpers/registry';
import { skopeoInspectRaw } from '../helpers/skopeo';
import { readFileSync } from 'node:fs';

const PUBLISHED_AT = '2026-02-01T08:00:00Z';
let work: string;
let registry: RunningRegistry;
const servers: GitHubApiServer[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'boot-e2e-'));
  registry = await startRegistry();
});
afterAll(async () => {
  await Promise.allSettled([registry?.stop(), ...servers.map((s) => s.stop())]);
  await rm(work, { recursive: true, force: true });
});

interface ReleaseSpec {
  version: string;
  arches: SampleArch[];
  kvm: boolean;
  mode?: InitMode;
  /** The demo's placeholder EFI stub, which firmware refuses to start. */
  refusedStub?: boolean;
}

/** Generates the release and serves it from a GitHub API stand-in of its own. */
async function serveRelease(spec: ReleaseSpec): Promise<GitHubApiServer> {
  const dir = join(work, `${spec.version}-${spec.mode ?? 'good'}${spec.refusedStub ? '-refused' : ''}`);
  const files: Partial<Record<SampleArch, { initrd: string; squashfs: string; raw: string }>> = {};
  const stubs: Partial<Record<SampleArch, Uint8Array>> = {};
  const kernel: Partial<Record<SampleArch, Uint8Array>> = {};
  for (const arch of spec.arches) {
    const a = await makeBootableArtifacts({
      dir: join(dir, `boot-${arch}`),
      arch,
      version: spec.version,
      mode: spec.mode ?? 'good',
      withoutRaw: !spec.kvm,
    });
    files[arch] = { initrd: a.initrd, squashfs: a.squashfs, raw: a.raw };
    stubs[arch] = spec.refusedStub ? createSamplePeStub(arch) : readFileSync(a.stub);
    kernel[arch] = readFileSync(a.kernel);
  }
  const release = await generateSampleRelease({
    dir: join(dir, 'assets'),
    version: spec.version,
    commit8: '0b00c0de',
    flavors: [
      { asset: 'baremetal_pxe', kind: 'metal' },
      ...(spec.kvm ? [{ asset: 'kvm-gardener_prod', kind: 'kvm' as const }] : []),
    ],
    arches: spec.arches,
    layout: 'flat',
    sparseRaw: true,
    stubs,
    kernel,
    files,
  });
  const server = await startGitHubApiServer({
    releases: [
      {
        tag: spec.version,
        publishedAt: PUBLISHED_AT,
        assets: release.assets.map((a) => ({ name: a.name, path: a.path })),
      },
    ],
  });
  servers.push(server);
  return server;
}

function inputs(spec: ReleaseSpec, extra: Record<string, string> = {}): Record<string, string> {
  return {
    version: spec.version,
    registry: registry.host,
    'uki-builder': 'native',
    architectures: spec.arches.join(','),
    'select-flavors': spec.kvm ? 'gardenlinux:metal,gardenlinux/gardener:kvm' : 'gardenlinux:metal',
    'combined-index': 'true',
    'boot-test': 'all',
    ...extra,
  };
}

/** Every tag of `version` in the registry's repositories (the registry's own view, not ours). */
async function tagsOf(version: string): Promise<string[]> {
  const catalog = (await (await fetch(`http://${registry.host}/v2/_catalog?n=1000`)).json()) as {
    repositories?: string[];
  };
  const found: string[] = [];
  for (const repo of catalog.repositories ?? []) {
    const res = await fetch(`http://${registry.host}/v2/${repo}/tags/list`);
    const body = (await res.json()) as { tags?: string[] | null };
    for (const tag of body.tags ?? []) if (tag.startsWith(version)) found.push(`${repo}:${tag}`);
  }
  return found.sort();
}

const env = (server: GitHubApiServer): Record<string, string> => ({ GITHUB_API_URL: server.apiUrl });

describe('boot-verified publishing through the action', () => {
  it('boots metal amd64 (UKI and PXE), kvm amd64 and both on arm64 under TCG, then tags', async () => {
    const spec: ReleaseSpec = { version: '2150.1.0', arches: ['amd64', 'arm64'], kvm: true };
    const server = await serveRelease(spec);
    // RUNNER_TEMP of our own, so the serial logs the action keeps there can be read afterwards.
    const runnerTemp = join(work, 'runner-temp');
    await mkdir(runnerTemp, { recursive: true });
    const run = await runAction(inputs(spec, { 'boot-test-accel': 'auto' }), {
      env: { ...env(server), RUNNER_TEMP: runnerTemp },
      timeoutMs: 600_000,
    });
    expect(errorLines(run)).toEqual([]);
    expect(run.code).toBe(0);
    const boots = JSON.parse(run.outputs['boot-tests']!) as BootTestRecord[];
    expect(boots.map((b) => `${b.image.split('/').slice(1).join('/')} ${b.path}`).sort()).toEqual([
      'test-owner/gardenlinux/gardener:2150.1.0-kvm-amd64 disk',
      'test-owner/gardenlinux/gardener:2150.1.0-kvm-arm64 disk',
      'test-owner/gardenlinux:2150.1.0-metal-amd64 pxe',
      'test-owner/gardenlinux:2150.1.0-metal-amd64 uki',
      'test-owner/gardenlinux:2150.1.0-metal-arm64 pxe',
      'test-owner/gardenlinux:2150.1.0-metal-arm64 uki',
    ]);
    for (const boot of boots) {
      expect(boot.result, `${boot.image} ${boot.path}`).toBe('passed');
      expect(boot.seconds).toBeGreaterThan(0);
      // `auto` falls back to TCG where KVM does not work (as here); arm64 is always emulated on x86.
      if (boot.architecture === 'arm64') expect(boot.accelerator).toBe('tcg');
      expect(boot.serialLog.startsWith(join(runnerTemp, 'ironcore-boot-logs'))).toBe(true);
      expect(await readFile(boot.serialLog, 'utf8')).toContain('Welcome to IronCore Boot Test 2150.1.0');
    }
    // The log names the accelerator and why, per image.
    expect(run.stdout).toMatch(/metal-amd64: booting \(uki, amd64, (kvm|tcg): /);
    expect(run.stdout).toMatch(
      /metal-arm64: booting \(uki, arm64, tcg: arm64 guest on an x64 host: emulated/,
    );
    // The summary has a row per boot.
    expect(run.summary).toContain('Boot tests');
    expect(run.summary.match(/<td>passed<\/td>/g)).toHaveLength(6);
    // And every tag is there, read back by skopeo.
    const tags = run.outputs.tags!.split('\n');
    expect(tags).toHaveLength(4 + 2 + 2);
    for (const tag of tags) expect((await skopeoInspectRaw(`docker://${tag}`)).digest).toMatch(/^sha256:/);
  }, 900_000);

  it.each([
    ['panic', '2150.2.0', { mode: 'panic' }, /kernel panic: Attempted to kill init/],
    ['emergency shell', '2150.3.0', { mode: 'emergency' }, /emergency shell: You are in emergency mode/],
    ['timeout', '2150.4.0', { mode: 'hang' }, /timeout: no sign of a running system within 15 s/],
    [
      'firmware refusal',
      '2150.5.0',
      { refusedStub: true },
      /firmware refused the image: Boot\w+ .*Unsupported/,
    ],
  ] as const)(
    'a bad image (%s) fails the run, writes zero tags, and a fixed re-run publishes',
    async (_name, version, bad, reason) => {
      const spec: ReleaseSpec = { version, arches: ['amd64'], kvm: false, ...bad };
      const broken = await serveRelease(spec);
      // Only the hanging image needs a short timeout; the others must fail by their own sign, however slow the machine.
      const timeout: Record<string, string> =
        'mode' in bad && bad.mode === 'hang' ? { 'boot-test-timeout': '15' } : {};
      const run = await runAction(inputs(spec, { 'boot-test': 'native', ...timeout }), {
        env: env(broken),
        timeoutMs: 300_000,
      });
      expect(run.code).not.toBe(0);
      const errors = errorLines(run).join('\n');
      expect(errors).toContain(
        `boot test failed: ${registry.host}/test-owner/gardenlinux:${version}-metal-amd64 (uki boot, amd64,`,
      );
      expect(errors).toMatch(reason);
      expect(errors).toContain('lines of the serial console');
      expect(errors).toContain('No tag of this version was written');
      const boots = JSON.parse(run.outputs['boot-tests']!) as BootTestRecord[];
      expect(boots.at(-1)).toMatchObject({ result: 'failed', path: 'uki' });
      expect(run.summary).toContain('Boot tests failed: no tag was written');
      expect(await tagsOf(version)).toEqual([]);

      // Fixed: the same version, now with a good image.
      const fixed = await serveRelease({ version, arches: ['amd64'], kvm: false });
      const rerun = await runAction(inputs(spec, { 'boot-test': 'native' }), {
        env: env(fixed),
        timeoutMs: 300_000,
      });
      expect(errorLines(rerun)).toEqual([]);
      expect(rerun.code).toBe(0);
      expect(await tagsOf(version)).toEqual([
        `test-owner/gardenlinux:${version}`,
        `test-owner/gardenlinux:${version}-metal`,
        `test-owner/gardenlinux:${version}-metal-amd64`,
      ]);
    },
  );

  it('with QEMU missing, fails before downloading with a hint that says how to install it', async () => {
    const spec: ReleaseSpec = { version: '2150.20.0', arches: ['amd64'], kvm: false };
    const server = await serveRelease(spec);
    // A PATH with the tools the pipeline may use, but no qemu-system-*.
    const bin = join(work, 'no-qemu-bin');
    await mkdir(bin, { recursive: true });
    for (const tool of ['xz', 'tar', 'setpriv']) {
      const path = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      await symlink(path, join(bin, tool)).catch(() => {});
    }
    const run = await runAction(inputs(spec, { 'boot-test': 'native' }), {
      env: { ...env(server), PATH: bin },
    });
    expect(run.code).not.toBe(0);
    const errors = errorLines(run).join('\n');
    expect(errors).toContain('qemu-system-x86_64 is not installed: it is needed to boot-test amd64 images');
    expect(errors).toContain('sudo apt-get install -y qemu-system-x86 ovmf');
    expect(errors).toContain('install-qemu: true');
    expect(server.requests.filter((r) => r.host.startsWith('127.0.0.2'))).toEqual([]);
    expect(await tagsOf('2150.20.0')).toEqual([]);
  }, 300_000);

  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'a run cancelled with %s during a boot leaves no QEMU process and no tag',
    async (signal) => {
      const version = signal === 'SIGTERM' ? '2150.30.0' : '2150.31.0';
      const spec: ReleaseSpec = { version, arches: ['amd64'], kvm: false, mode: 'hang' };
      const server = await serveRelease(spec);
      let pid = 0;
      let qemuPids: number[] = [];
      // A TMPDIR of its own: a SIGKILLed action cannot remove its work folder, so the test does (afterAll).
      const temp = join(work, `tmp-${signal}`);
      await mkdir(temp);
      const running = runAction(inputs(spec, { 'boot-test': 'native', 'boot-test-timeout': '600' }), {
        env: { ...env(server), TMPDIR: temp },
        onSpawn: (child) => (pid = child.pid ?? 0),
      });
      // Wait until the action's QEMU runs, then cancel.
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline && qemuPids.length === 0) {
        await new Promise((r) => setTimeout(r, 500));
        qemuPids = await qemuChildrenOf(pid);
      }
      expect(qemuPids.length).toBe(1);
      process.kill(pid, signal);
      const run = await running;
      expect(run.code).not.toBe(0);
      // Gone: killed by us on SIGTERM, by the kernel (parent-death signal) on SIGKILL.
      await new Promise((r) => setTimeout(r, 1000));
      for (const q of qemuPids) expect(isAlive(q), `QEMU ${q}`).toBe(false);
      expect(await tagsOf(version)).toEqual([]);
      // On SIGTERM the action removes its temporary files itself.
      if (signal === 'SIGTERM') expect(await readdir(temp)).toEqual([]);
    },
    300_000,
  );
});

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** QEMU processes whose parent is `pid`. */
async function qemuChildrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && stat.includes('(qemu-system-')) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}
