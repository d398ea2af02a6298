// A fault-injecting loopback proxy in front of a real registry: records every request and lets a test
// answer some itself (429, 503, 416...), or forward them and then drop the connection.
import { request as httpRequest, createServer } from 'node:http';
import type { IncomingMessage, IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** performance.now() when the request arrived and when its answer was sent (or the connection cut). */
  startedAt: number;
  endedAt?: number;
}

/** The largest number of requests matching `filter` that were in flight at the same time. */
export function maxOverlap(requests: readonly RecordedRequest[], filter: (r: RecordedRequest) => boolean): number {
  const events = requests
    .filter(filter)
    .flatMap((r) => [
      { t: r.startedAt, d: 1 },
      { t: r.endedAt ?? Infinity, d: -1 },
    ])
    .sort((a, b) => a.t - b.t || a.d - b.d);
  let current = 0;
  let max = 0;
  for (const e of events) max = Math.max(max, (current += e.d));
  return max;
}

export type ProxyAction =
  | { kind: 'pass' }
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward the request, wait for the registry's answer, then cut the client's connection. */
  | { kind: 'forward-then-drop' }
  /** Cut the connection without forwarding anything. */
  | { kind: 'drop' };

export type ProxyHook = (req: RecordedRequest, index: number) => ProxyAction | undefined;

export interface RunningProxy {
  host: string;
  requests: RecordedRequest[];
  hook: ProxyHook | undefined;
  stop(): Promise<void>;
}

function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    req.on('end', resolve);
    req.on('error', () => resolve());
    req.resume();
  });
}

export async function startProxy(target: string, bindHost = '127.0.0.1'): Promise<RunningProxy> {
  const [targetHost, targetPort] = target.split(':');
  const proxy: RunningProxy = { host: '', requests: [], hook: undefined, stop: async () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const recorded: RecordedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, startedAt: performance.now() };
    res.on('close', () => (recorded.endedAt = performance.now()));
    const index = proxy.requests.push(recorded) - 1;
    const action = proxy.hook?.(recorded, index) ?? { kind: 'pass' };
    if (action.kind === 'respond') {
      void drain(req).then(() => {
        res.writeHead(action.status, action.headers ?? {});
        res.end(action.body ?? '');
      });
      return;
    }
    if (action.kind === 'drop') {
      void drain(req).then(() => req.socket.destroy());
      return;
    }
    const upstream = httpRequest(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (action.kind === 'forward-then-drop') {
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, bindHost, resolve));
  proxy.host = `${bindHost}:${(server.address() as AddressInfo).port}`;
  proxy.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
