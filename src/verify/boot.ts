// Boots one IronCore image the way its consumer does, from the very files that are (or will be) published,
// and says whether it reached userspace. Three paths:
//   uki   metal HTTP boot: the `uki` layer as the removable-media loader on a FAT ESP, UEFI, Secure Boot off;
//         SMBIOS type 11 appends `ignition.firstboot=0` (the embedded command line points Ignition at a host
//         a runner cannot reach, which hangs the initrd) and the arch's serial console, last so it is /dev/console.
//   pxe   metal PXE as boot-operator serves it: the `kernel` and `initramfs` layers, the `squashfs` layer over
//         HTTP from a loopback server, reached through QEMU user networking at 10.0.2.2.
//   disk  kvm as libvirt-provider runs it: the `rootfs` layer as a virtio disk (copy-on-write: the file is
//         never written), UEFI, and an Ignition config on fw_cfg `opt/com.coreos/config`.
// Success comes from the image's `_fwcfg` hook (a report over virtio-serial), or from the console.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PublishError } from '../util/errors';
import type { Logger } from '../util/logger';
import { chooseAccelerator, type AcceleratorChoice } from './accel';
import { ConsoleWatcher, DEFAULT_EXPECT, type BootFailureReason } from './console';
import { writeEspImage } from './esp';
import { findFirmware, prepareFlash } from './firmware';
import { HOOK_FW_CFG_NAME, HOOK_SCRIPT, parseHookReport, REPORT_PORT, type HookReport } from './hook';
import { findQemu, machineArguments, spawnQemu, stopQemu, type Accelerator, type GuestArch } from './qemu';

export type BootPath = 'uki' | 'pxe' | 'disk';

export interface BootFiles {
  uki?: string;
  kernel?: string;
  initramfs?: string;
  squashfs?: string;
  /** The kvm `rootfs` layer: a raw disk image. */
  disk?: string;
}

export interface BootRequest {
  /** What is booted, for messages: a reference or a file name. */
  image: string;
  arch: GuestArch;
  path: BootPath;
  files: BootFiles;
  /** The image config's command line (PXE: the kernel command line before ours). */
  commandLine?: string;
  accelerator: AcceleratorChoice;
  /** Seconds until the boot counts as hung; default {@link defaultBootTimeout}. */
  timeoutSeconds?: number;
  /** Console success marker; default systemd's `Welcome to ...!` or a `login:` prompt. */
  expect?: RegExp;
  /**
   * The image has the `_fwcfg` hook (Garden Linux since 1877.14 / 2150.0.0): its report decides, and the
   * console marker only counts when no report started within {@link hookGraceSeconds} of it.
   */
  expectHook?: boolean;
  /** Folder for this boot's files; the serial log stays there. */
  workDir: string;
  memoryMiB?: number;
  logger: Logger;
  signal?: AbortSignal;
}

export interface BootResult {
  image: string;
  path: BootPath;
  arch: GuestArch;
  accelerator: Accelerator;
  result: 'passed' | 'failed';
  reason?: BootFailureReason;
  /** The matched line, the hook's state or QEMU's complaint. */
  detail?: string;
  /** `hook`: the image's own report; `console`: the marker on the serial console. */
  signal?: 'hook' | 'console';
  seconds: number;
  serialLog: string;
  /** The last ~40 lines of the serial console. */
  tail: string[];
}

/** KVM boots in well under a minute; TCG is several times slower (Garden Linux gives its TCG jobs 40 minutes). */
export function defaultBootTimeout(accelerator: Accelerator): number {
  return accelerator === 'kvm' ? 300 : 900;
}

/** After the console marker, how long to wait for a hook that would tell more. */
function hookGraceSeconds(accelerator: Accelerator): number {
  return accelerator === 'kvm' ? 60 : 180;
}

const IGNITION_CONFIG = '{"ignition":{"version":"3.0.0"}}\n';

function serialConsole(arch: GuestArch): string {
  // QEMU doubles commas inside -smbios values.
  return arch === 'amd64' ? 'console=ttyS0,115200' : 'console=ttyAMA0';
}

export async function bootImage(request: BootRequest): Promise<BootResult> {
  const { logger, signal, arch } = request;
  const qemu = await findQemu(arch);
  const firmware = await findFirmware(arch);
  const { accelerator, why } = await chooseAccelerator(request.accelerator, arch, qemu);
  const dir = request.workDir;
  await mkdir(dir, { recursive: true });
  const serialLog = join(dir, 'serial.log');
  const reportFile = join(dir, 'report');
  await writeFile(reportFile, '');
  const timeoutSeconds = request.timeoutSeconds ?? defaultBootTimeout(accelerator);
  logger.info(
    `${request.image}: booting (${request.path}, ${arch}, ${accelerator}: ${why}; timeout ${timeoutSeconds} s)`,
  );

  const flash = await prepareFlash(firmware, dir);
  await writeFile(join(dir, 'fwcfg-script.sh'), HOOK_SCRIPT);
  const args = [
    ...machineArguments(arch, accelerator),
    '-m',
    String(request.memoryMiB ?? (await memoryFor(request.files))),
    '-smp',
    '2',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-chardev',
    'stdio,id=console,signal=off',
    '-serial',
    'chardev:console',
    '-drive',
    `if=pflash,unit=0,format=raw,readonly=on,file=${flash.code}`,
    '-drive',
    `if=pflash,unit=1,format=raw,file=${flash.vars}`,
    '-fw_cfg',
    `name=${HOOK_FW_CFG_NAME},file=${join(dir, 'fwcfg-script.sh')}`,
    '-device',
    'virtio-serial-pci,id=vser',
    '-chardev',
    `file,id=report,path=${reportFile}`,
    '-device',
    `virtserialport,bus=vser.0,chardev=report,name=${REPORT_PORT}`,
  ];
  let server: { server: Server; requests: () => number } | undefined;
  const cleanup: string[] = [flash.vars];
  if (flash.code.startsWith(dir)) cleanup.push(flash.code);
  try {
    if (request.path === 'uki') {
      const uki = need(request, 'uki');
      const esp = join(dir, 'esp.img');
      cleanup.push(esp);
      await writeEspImage(uki, esp, arch, signal);
      const extra = `io.systemd.stub.kernel-cmdline-extra=ignition.firstboot=0 ${serialConsole(arch)}`;
      args.push(
        '-drive',
        `if=none,id=esp,format=raw,readonly=on,file=${esp}`,
        '-device',
        'virtio-blk-pci,drive=esp,bootindex=1',
        '-smbios',
        `type=11,value=${extra.replaceAll(',', ',,')}`,
      );
    } else if (request.path === 'pxe') {
      const kernel = need(request, 'kernel');
      const initramfs = need(request, 'initramfs');
      server = await serveSquashfs(need(request, 'squashfs'));
      const port = (server.server.address() as AddressInfo).port;
      const cmdline = [
        request.commandLine ?? '',
        `gl.url=http://10.0.2.2:${port}/root.squashfs gl.live=1 ignition.firstboot=0`,
        serialConsole(arch),
      ]
        .filter(Boolean)
        .join(' ');
      args.push(
        '-kernel',
        kernel,
        '-initrd',
        initramfs,
        '-append',
        cmdline,
        '-netdev',
        'user,id=net0',
        // No option ROM: the firmware must not try a network boot of its own.
        '-device',
        'virtio-net-pci,netdev=net0,romfile=',
      );
    } else {
      const disk = need(request, 'disk');
      const ignition = join(dir, 'config.ign');
      await writeFile(ignition, IGNITION_CONFIG);
      args.push(
        // snapshot=on: writes go to a temporary overlay (in TMPDIR, set to this folder), never to the layer.
        '-drive',
        `if=none,id=disk,format=raw,snapshot=on,file=${disk}`,
        '-device',
        'virtio-blk-pci,drive=disk,bootindex=1',
        '-fw_cfg',
        `name=opt/com.coreos/config,file=${ignition}`,
      );
    }
    const result = await run(qemu, args, request, {
      accelerator,
      timeoutSeconds,
      serialLog,
      reportFile,
      ...(server ? { squashfsRequests: server.requests } : {}),
    });
    logger.info(
      `${request.image}: ${request.path} boot ${result.result}${result.reason ? ` (${result.reason}${result.detail ? `: ${result.detail}` : ''})` : ''} in ${result.seconds.toFixed(1)} s; serial log ${serialLog}`,
    );
    return result;
  } finally {
    await new Promise<void>((resolve) => (server ? server.server.close(() => resolve()) : resolve()));
    await Promise.all(cleanup.map((f) => rm(f, { force: true })));
  }
}

function need(request: BootRequest, file: keyof BootFiles): string {
  const path = request.files[file];
  if (!path)
    throw new PublishError(
      `${request.image}: the ${request.path} boot needs the ${file} layer, which the image lacks`,
    );
  return path;
}

/** Room for what the initrd unpacks into RAM (the UKI carries the squashfs), with 2 GiB for the system. */
async function memoryFor(files: BootFiles): Promise<number> {
  let inRam = 0;
  for (const path of [files.uki, files.initramfs, files.squashfs]) {
    if (path) inRam += (await stat(path)).size;
  }
  return Math.max(2048, 2048 + Math.ceil((inRam * 2.5) / 2 ** 20 / 256) * 256);
}

async function serveSquashfs(path: string): Promise<{ server: Server; requests: () => number }> {
  const size = (await stat(path)).size;
  let requests = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/root.squashfs' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    requests++;
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(path, { highWaterMark: 1024 * 1024 }).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { server, requests: () => requests };
}

type Verdict = Pick<BootResult, 'result' | 'reason' | 'detail' | 'signal'>;

interface RunOptions {
  accelerator: Accelerator;
  timeoutSeconds: number;
  serialLog: string;
  reportFile: string;
  squashfsRequests?: () => number;
}

async function run(
  qemu: string,
  args: string[],
  request: BootRequest,
  options: RunOptions,
): Promise<BootResult> {
  const started = performance.now();
  const watcher = new ConsoleWatcher(request.expect ?? DEFAULT_EXPECT);
  const log = createWriteStream(options.serialLog);
  const child = await spawnQemu(qemu, args, { env: { ...process.env, TMPDIR: request.workDir } });
  let stderr = '';
  let consoleSuccess: { line: string; at: number } | undefined;
  let verdict: Verdict | undefined;
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => (settle = resolve));
  const decide = (v: Verdict): void => {
    if (verdict) return;
    verdict = v;
    settle();
  };

  child.stdout?.on('data', (chunk: Buffer) => {
    log.write(chunk);
    const event = watcher.push(chunk.toString('latin1'));
    if (!event) return;
    if (event.kind === 'failure') decide({ result: 'failed', reason: event.reason, detail: event.detail });
    else if (!consoleSuccess) {
      consoleSuccess = { line: event.line, at: performance.now() };
      if (!request.expectHook) decide({ result: 'passed', signal: 'console', detail: event.line });
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  child.once('error', (error) =>
    decide({ result: 'failed', reason: 'QEMU failed to start', detail: error.message }),
  );
  child.once('close', (code, sig) => {
    // Let the last report bytes land before judging an exit.
    void readReport(options.reportFile).then((report) => {
      const fromHook = judgeReport(report);
      if (fromHook) return decide(fromHook);
      if (consoleSuccess) return decide({ result: 'passed', signal: 'console', detail: consoleSuccess.line });
      const complaint = stderr.trim().split('\n').slice(-3).join(' ');
      const early = watcher.lastLines().length === 0;
      decide({
        result: 'failed',
        reason: early && code !== 0 ? 'QEMU failed to start' : 'QEMU exited',
        detail: `${code === null ? `signal ${sig}` : `exit ${code}`} before the system came up${complaint ? `: ${complaint}` : ''}`,
      });
    });
  });

  const poll = setInterval(() => {
    void readReport(options.reportFile).then((report) => {
      const fromHook = judgeReport(report);
      if (fromHook) return decide(fromHook);
      // The marker appeared but the hook never started: pass on the console (images without the hook).
      if (
        consoleSuccess &&
        !report.started &&
        (performance.now() - consoleSuccess.at) / 1000 > hookGraceSeconds(options.accelerator)
      ) {
        decide({
          result: 'passed',
          signal: 'console',
          detail: `${consoleSuccess.line} (no report from the _fwcfg hook)`,
        });
      }
    });
  }, 500);
  const timer = setTimeout(
    () =>
      decide({
        result: 'failed',
        reason: 'timeout',
        detail: `no sign of a running system within ${options.timeoutSeconds} s`,
      }),
    options.timeoutSeconds * 1000,
  );
  const onAbort = (): void =>
    decide({ result: 'failed', reason: 'cancelled', detail: 'the run was cancelled' });
  request.signal?.addEventListener('abort', onAbort, { once: true });
  if (request.signal?.aborted) onAbort();
  try {
    await settled;
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
    request.signal?.removeEventListener('abort', onAbort);
    await stopQemu(child);
    await new Promise<void>((resolve) => log.end(() => resolve()));
  }
  if (request.signal?.aborted)
    throw request.signal.reason instanceof Error ? request.signal.reason : new PublishError('cancelled');
  let v = verdict!;
  // A PXE boot that never asked for the squashfs did not boot what boot-operator serves.
  if (v.result === 'passed' && options.squashfsRequests?.() === 0) {
    v = {
      result: 'failed',
      reason: 'system not running',
      detail: 'the system came up without fetching root.squashfs from the PXE server (gl.url)',
    };
  }
  return {
    image: request.image,
    path: request.path,
    arch: request.arch,
    accelerator: options.accelerator,
    ...v,
    seconds: (performance.now() - started) / 1000,
    serialLog: options.serialLog,
    tail: watcher.lastLines(),
  };
}

async function readReport(path: string): Promise<HookReport> {
  return parseHookReport(await readFile(path, 'utf8').catch(() => ''));
}

function judgeReport(report: HookReport): Verdict | undefined {
  if (!report.done) return undefined;
  if (report.state === 'running' && report.failedUnits.length === 0)
    return { result: 'passed', signal: 'hook', detail: 'systemctl is-system-running: running' };
  return {
    result: 'failed',
    reason: report.failedUnits.length > 0 ? 'unit failed' : 'system not running',
    signal: 'hook',
    detail: `systemctl is-system-running: ${report.state ?? 'unknown'}${report.failedUnits.length ? `; failed: ${report.failedUnits.join(', ')}` : ''}`,
  };
}

/** One error for a failed boot: image, path, reason, and the console's last lines. */
export function bootFailure(result: BootResult): PublishError {
  const lines = result.tail.length ? result.tail.join('\n') : '(the serial console printed nothing)';
  return new PublishError(
    `boot test failed: ${result.image} (${result.path} boot, ${result.arch}, ${result.accelerator}): ${result.reason}${result.detail ? `: ${result.detail}` : ''}\n` +
      `--- last ${result.tail.length} lines of the serial console (${result.serialLog}) ---\n${lines}\n---`,
    { hint: 'No tag of this version was written. Fix the image and run again: what was uploaded is reused.' },
  );
}
