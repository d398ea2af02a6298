// Starts a real HTTP proxy (Debian's tinyproxy) on 127.0.0.1 and a free port, optionally with Basic
// auth, logging every request line to a file the tests read: which hosts the traffic went to is read
// from the proxy's own log, not from our side. Always call stop() (afterAll).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './registry';

export interface ProxyRequest {
  /** `CONNECT` for a tunnel, else the forwarded method. */
  method: string;
  /** `host:port` the proxy was asked for. */
  target: string;
}

export interface RunningTinyproxy {
  /** `http://127.0.0.1:PORT` (no credentials). */
  url: string;
  port: number;
  /** Every request line the proxy logged so far, in order. */
  requests(): Promise<ProxyRequest[]>;
  /** The proxy's whole log (for a failing test's message). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** `Request (file descriptor 5): CONNECT 127.0.0.1:35000 HTTP/1.1` or `... GET http://host:port/path HTTP/1.1`. */
export function parseTinyproxyLog(text: string): ProxyRequest[] {
  const out: ProxyRequest[] = [];
  for (const m of text.matchAll(/Request \(file descriptor \d+\): (\S+) (\S+) HTTP\/1\.[01]/g)) {
    const method = m[1] as string;
    const target = method === 'CONNECT' ? (m[2] as string) : new URL(m[2] as string).host;
    out.push({ method, target });
  }
  return out;
}

export async function startTinyproxy(options: { basicAuth?: { user: string; password: string } } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'tinyproxy-'));
  const port = await freePort();
  const logFile = join(dir, 'tinyproxy.log');
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Allow 127.0.0.1',
    `LogFile "${logFile}"`,
    'LogLevel Info',
    'MaxClients 64',
    'Timeout 300',
  ];
  // No ConnectPort line: tinyproxy then tunnels to any port (the test servers' ports are random).
  if (options.basicAuth) lines.push(`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`);
  const config = join(dir, 'tinyproxy.conf');
  await writeFile(config, `${lines.join('\n')}\n`);
  let output = '';
  const child = spawn('tinyproxy', ['-d', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const log = (): Promise<string> => readFile(logFile, 'utf8').catch(() => '');
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`tinyproxy did not start on port ${port}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const running: RunningTinyproxy = {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: async () => parseTinyproxyLog(await log()),
    log,
    stop,
  };
  return running;
}
