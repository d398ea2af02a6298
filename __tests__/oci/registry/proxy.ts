// A fault-injecting loopback proxy in front of a real registry (or the GitHub API stand-in): records
// every request and lets a test answer some itself (429, 503, 416...), forward them and then drop the
// connection, cut a request or an answer after some bytes, stall an answer, or rewrite a JSON answer.
// `rewrite` pairs replace absolute URLs in JSON bodies and Location/Link headers, so a server that
// names its own address (the GitHub stand-in) is still reached through the proxy.
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
  /** The status the client was answered with (the upstream's, or the hook's), once known. */
  status?: number;
}

/** The largest number of requests matching `filter` that were in flight at the same time. */
export function maxOverlap(
  requests: readonly RecordedRequest[],
  filter: (r: RecordedRequest) => boolean,
): number {
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
  | { kind: 'drop' }
  /** Forward only the first `afterBytes` of the request body, then reset both connections (a broken upload). */
  | { kind: 'cut-request'; afterBytes: number }
  /** Forward the answer's headers and its first `afterBytes` body bytes, then reset (a broken download). */
  | { kind: 'cut-response'; afterBytes: number }
  /** Forward the headers and `afterBytes` body bytes, then send nothing for `ms` (then reset). */
  | { kind: 'stall'; afterBytes: number; ms: number }
  /** Forward the request body (`request`) or the answer (`response`) at about `bytesPerSecond`: a slow link. */
  | { kind: 'throttle'; bytesPerSecond: number; direction: 'request' | 'response' }
  /** Forward, then hand the (buffered) answer to `edit` before passing it on. */
  | { kind: 'edit'; edit: (answer: EditableAnswer) => EditableAnswer }
  /** Forward at once (the server acts now), but hold the complete answer back for `ms` (a slow network). */
  | { kind: 'hold'; ms: number };

export interface EditableAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type ProxyHook = (req: RecordedRequest, index: number) => ProxyAction | undefined;

export interface RunningProxy {
  host: string;
  requests: RecordedRequest[];
  hook: ProxyHook | undefined;
  /** `[from, to]` text replacements in JSON answers and Location/Link headers. */
  rewrite: [string, string][];
  stop(): Promise<void>;
}

function replaceAll(text: string, pairs: readonly [string, string][]): string {
  return pairs.reduce((t, [from, to]) => t.split(from).join(to), text);
}

/** Pipes `from` into `to` at about `bytesPerSecond` (in slices of 1/20 s), ending `to` at the end. */
function throttledPipe(
  from: NodeJS.ReadableStream & { destroy(): void },
  to: NodeJS.WritableStream & { destroyed?: boolean },
  bytesPerSecond: number,
): void {
  const slice = Math.max(1, Math.floor(bytesPerSecond / 20));
  void (async () => {
    try {
      for await (const chunk of from as AsyncIterable<Buffer>) {
        for (let at = 0; at < chunk.length; at += slice) {
          if (to.destroyed) return from.destroy();
          const part = chunk.subarray(at, at + slice);
          if (!to.write(part)) await new Promise<void>((r) => to.once('drain', () => r()));
          await new Promise((r) => setTimeout(r, (part.length / bytesPerSecond) * 1000));
        }
      }
      to.end();
    } catch {
      from.destroy();
    }
  })();
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
  const proxy: RunningProxy = { host: '', requests: [], hook: undefined, rewrite: [], stop: async () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      startedAt: performance.now(),
    };
    res.on('close', () => (recorded.endedAt = performance.now()));
    const index = proxy.requests.push(recorded) - 1;
    const action = proxy.hook?.(recorded, index) ?? { kind: 'pass' };
    if (action.kind === 'respond') {
      void drain(req).then(() => {
        recorded.status = action.status;
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
        recorded.status = answer.statusCode;
        if (action.kind === 'forward-then-drop') {
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        const headers = { ...answer.headers };
        for (const name of ['location', 'link'] as const) {
          const value = headers[name];
          if (typeof value === 'string') headers[name] = replaceAll(value, proxy.rewrite);
        }
        const json = String(headers['content-type'] ?? '').includes('json');
        if (action.kind === 'edit' || action.kind === 'hold' || (json && proxy.rewrite.length > 0)) {
          const chunks: Buffer[] = [];
          answer.on('data', (c: Buffer) => chunks.push(c));
          answer.on('error', () => req.socket.destroy());
          answer.on('end', () => {
            let edited: EditableAnswer = {
              status: answer.statusCode ?? 502,
              headers,
              body: json
                ? Buffer.from(replaceAll(Buffer.concat(chunks).toString('utf8'), proxy.rewrite))
                : Buffer.concat(chunks),
            };
            if (action.kind === 'edit') edited = action.edit(edited);
            const out: Record<string, string | string[] | undefined> = {
              ...edited.headers,
              'content-length': String(edited.body.length),
            };
            delete out['transfer-encoding'];
            const send = (): void => {
              res.writeHead(edited.status, out);
              res.end(edited.body);
            };
            if (action.kind === 'hold') setTimeout(send, action.ms).unref();
            else send();
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, headers);
        if (action.kind === 'cut-response' || action.kind === 'stall') {
          let left = action.afterBytes;
          let cut = false;
          answer.on('data', (c: Buffer) => {
            if (cut) return;
            if (c.length < left) {
              left -= c.length;
              res.write(c);
              return;
            }
            cut = true;
            answer.destroy();
            const reset = (): void => void req.socket.destroy();
            res.write(c.subarray(0, left), () => {
              if (action.kind === 'stall') setTimeout(reset, action.ms).unref();
              else reset();
            });
          });
          answer.on('end', () => {
            if (!cut && action.kind === 'stall') setTimeout(() => res.end(), action.ms).unref();
            else if (!cut) res.end();
          });
          return;
        }
        if (action.kind === 'throttle' && action.direction === 'response') {
          answer.on('error', () => req.socket.destroy());
          throttledPipe(answer, res, action.bytesPerSecond);
          return;
        }
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    if (action.kind === 'cut-request') {
      let left = action.afterBytes;
      req.on('data', (c: Buffer) => {
        if (left <= 0) return;
        if (c.length < left) {
          left -= c.length;
          upstream.write(c);
          return;
        }
        upstream.write(c.subarray(0, left));
        left = 0;
        // A connection reset in the middle of the upload: both sides see it.
        upstream.destroy();
        req.socket.destroy();
      });
      req.on('end', () => {
        if (left > 0) upstream.end();
      });
      return;
    }
    if (action.kind === 'throttle' && action.direction === 'request') {
      throttledPipe(req, upstream, action.bytesPerSecond);
      return;
    }
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
