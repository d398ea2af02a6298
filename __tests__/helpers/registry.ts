// Starts a real registry (Debian's docker-registry, CNCF distribution 2.8) on 127.0.0.1 and a free port,
// with storage in a temporary folder, optional htpasswd Basic auth or token auth, optional TLS, and
// deletes enabled. Shared by every suite and bench that needs a registry: always call stop() (afterAll).
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';

export interface RegistryOptions {
  /** Basic auth with these credentials (htpasswd -B). */
  htpasswd?: { username: string; password: string };
  /** Token (Bearer) auth: the registry trusts JWTs signed by the key of `rootCertBundle` (a PEM file). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** The registry's own log level (default error); debug helps when a test fails. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** HTTPS only, with this certificate and key (PEM files); `ca` is the CA that signed it. */
  tls?: { certificate: string; key: string; ca: string };
  /** The address to listen on (default 127.0.0.1); another one makes a non-loopback registry. */
  address?: string;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT` (or the address asked for) */
  host: string;
  /** `http://HOST`, or `https://HOST` with `tls`. */
  url: string;
  port: number;
  /** The storage folder (to inspect or corrupt stored data). */
  storage: string;
  /** The registry process (the benches read its CPU time from /proc); a restart changes it. */
  pid: number | undefined;
  /**
   * Stops the registry process (SIGTERM: its own shutdown; SIGKILL: a crash), waits `downMs` with the port
   * closed, and starts it again on the same storage, port and config (upload sessions survive: their state
   * lives in the storage and in Locations signed with the unchanged `http.secret`).
   */
  restart(options?: { signal?: 'SIGTERM' | 'SIGKILL'; downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilUp(
  url: string,
  child: ChildProcess,
  output: () => string,
  ca: string | undefined,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Only this check trusts the test CA; the code under test gets it the way users give it.
  const dispatcher = new Agent(ca ? { connect: { ca: await readFile(ca, 'utf8') } } : {});
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${output()}`);
      try {
        const res = await request(url, { dispatcher });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 401) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await dispatcher.close();
  }
  throw new Error(`docker-registry did not answer on ${url} within ${timeoutMs} ms: ${output()}`);
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'registry-'));
  const storage = join(dir, 'storage');
  const address = options.address ?? '127.0.0.1';
  const port = await freePort(address);
  const lines = [
    'version: 0.1',
    `log:`,
    `  level: ${options.logLevel ?? 'error'}`,
    `  accesslog:`,
    `    disabled: true`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${address}:${port}`,
    `  secret: test-secret-${port}`,
  ];
  if (options.tls) {
    lines.push('  tls:', `    certificate: ${options.tls.certificate}`, `    key: ${options.tls.key}`);
  }
  if (options.htpasswd) {
    const file = join(dir, 'htpasswd');
    const entry = execFileSync('htpasswd', ['-Bbn', options.htpasswd.username, options.htpasswd.password], {
      encoding: 'utf8',
    });
    await writeFile(file, entry);
    lines.push('auth:', '  htpasswd:', '    realm: test-registry', `    path: ${file}`);
  } else if (options.token) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${options.token.realm}`,
      `    service: ${options.token.service}`,
      `    issuer: ${options.token.issuer}`,
      `    rootcertbundle: ${options.token.rootCertBundle}`,
    );
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);
  let output = '';
  const host = `${address}:${port}`;
  const url = `${options.tls ? 'https' : 'http'}://${host}`;
  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    await waitUntilUp(`${url}/v2/`, child, () => output, options.tls?.ca);
  };
  const halt = async (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  const stop = async (): Promise<void> => {
    await halt('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  };
  const running: RunningRegistry = {
    host,
    url,
    port,
    storage,
    pid: undefined,
    restart: async ({ signal = 'SIGTERM', downMs = 0 } = {}) => {
      await halt(signal);
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
      running.pid = child.pid;
    },
    stop,
  };
  try {
    await launch();
  } catch (error) {
    await stop();
    throw error;
  }
  running.pid = child!.pid;
  return running;
}
