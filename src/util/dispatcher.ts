// Every outgoing HTTP connection (the GitHub API, asset downloads, registries and their token services)
// is made by a dispatcher from this module, so all of them honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY
// (and the lowercase forms) the same way. Routing is undici's EnvHttpProxyAgent, given the settings read
// and checked here; what is added is what a person needs when it goes wrong: a proxy named in errors
// without the credentials of its URL, and the proxy's own refusals told apart from the server's answers.
import { Agent, EnvHttpProxyAgent } from 'undici';
import type { Dispatcher } from 'undici';
import { PublishError } from './errors';

export interface ProxyChoice {
  /** The proxy URL as undici gets it (may hold credentials: never print it, use `displayProxy`). */
  url: URL;
  /** The variable it came from (`HTTPS_PROXY`, `https_proxy`, ...), for hints. */
  variable: string;
}

export interface ProxySettings {
  http?: ProxyChoice;
  https?: ProxyChoice;
  /** NO_PROXY as given: comma or space separated hosts, `.domain`, `*.domain`, `host:port`, `*`. */
  noProxy: string;
}

type Env = Record<string, string | undefined>;

/** `scheme://host:port` of a proxy: what messages show (never its user or password). */
export function displayProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

/** A proxy variable's value with anything before an `@` hidden, for a value that is not even a URL. */
function hideUserInfo(value: string): string {
  return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?[^/@]*@/, '$1***@');
}

function readProxy(env: Env, lower: string, upper: string): ProxyChoice | undefined {
  // undici's order: the lowercase variable wins, even when it is empty.
  const variable = env[lower] !== undefined ? lower : upper;
  const raw = (env[variable] ?? '').trim();
  if (raw === '') return undefined;
  // curl and Go read `proxy:3128` as `http://proxy:3128`; so do we.
  const text = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PublishError(`${variable} is not a proxy URL: "${hideUserInfo(raw)}"`, {
      hint: `give it as http://host:port (or http://user:password@host:port), or unset ${variable}`,
    });
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw new PublishError(
      `${variable} names an unsupported proxy "${url.protocol}//${url.host}": only http:// and https:// proxies are supported`,
      { hint: `give it as http://host:port (or http://user:password@host:port), or unset ${variable}` },
    );
  }
  return { url, variable };
}

/**
 * The proxy settings of `env` (default: this process's environment), checked: a value that is not an
 * http(s) URL is a PublishError naming the variable, with any credentials in it hidden.
 */
export function proxySettings(env: Env = process.env): ProxySettings {
  const http = readProxy(env, 'http_proxy', 'HTTP_PROXY');
  // As undici (and the actions toolkit): HTTPS requests use HTTP_PROXY when HTTPS_PROXY is not set.
  const https = readProxy(env, 'https_proxy', 'HTTPS_PROXY') ?? http;
  const noProxy = env.no_proxy ?? env.NO_PROXY ?? '';
  return { ...(http ? { http } : {}), ...(https ? { https } : {}), noProxy };
}

/** One line for the log, or undefined when no proxy is set. */
export function describeProxies(settings: ProxySettings): string | undefined {
  if (!settings.http && !settings.https) return undefined;
  const show = (c: ProxyChoice | undefined): string =>
    c ? `${displayProxy(c.url)} (${c.variable})` : 'direct';
  const bypass = settings.noProxy.trim() ? `; not for ${settings.noProxy.trim()} (NO_PROXY)` : '';
  return `proxy for https: ${show(settings.https)}; for http: ${show(settings.http)}${bypass}`;
}

/** The passwords of the proxy URLs (as written and decoded), for a front door to mask. */
export function proxySecrets(settings: ProxySettings): string[] {
  const out = new Set<string>();
  for (const choice of [settings.http, settings.https]) {
    if (!choice?.url.password) continue;
    out.add(choice.url.password);
    out.add(decodeURIComponent(choice.url.password));
    const basic = `${decodeURIComponent(choice.url.username)}:${decodeURIComponent(choice.url.password)}`;
    out.add(Buffer.from(basic).toString('base64'));
  }
  return [...out];
}

interface NoProxyEntry {
  hostname: string;
  port: number;
  wildcard: boolean;
}

/** NO_PROXY parsed as undici's EnvHttpProxyAgent parses it (lib/dispatcher/env-http-proxy-agent.js). */
function parseNoProxy(value: string): NoProxyEntry[] {
  const entries: NoProxyEntry[] = [];
  for (const entry of value.split(/[,\s]/)) {
    if (!entry) continue;
    let hostname: string;
    let port: number;
    const v6 = /^\[(.+)\]:(\d+)$/.exec(entry);
    if (v6) {
      hostname = v6[1] as string;
      port = Number.parseInt(v6[2] as string, 10);
    } else {
      const unbracketed = entry.replace(/^\[(.+)\]$/, '$1');
      const hostPort = (unbracketed.match(/:/g) ?? []).length === 1 && /^(.+):(\d+)$/.exec(unbracketed);
      hostname = hostPort ? (hostPort[1] as string) : unbracketed;
      port = hostPort ? Number.parseInt(hostPort[2] as string, 10) : 0;
    }
    entries.push({
      hostname: hostname
        .replace(/^\*?\./, '')
        .replace(/^(.+)\.$/, '$1')
        .toLowerCase(),
      port,
      wildcard: entry.startsWith('*'),
    });
  }
  return entries;
}

/**
 * The proxy a request to `target` goes through, or undefined for a direct connection: the decision
 * EnvHttpProxyAgent makes (a test checks the two agree, through a real proxy). Used to name the proxy
 * in errors; the routing itself is undici's.
 */
export function proxyFor(target: string | URL, settings: ProxySettings): ProxyChoice | undefined {
  const url = new URL(target);
  const choice = url.protocol === 'https:' ? settings.https : settings.http;
  if (!choice) return undefined;
  let hostname = url.host
    .replace(/:\d*$/, '')
    .replace(/^\[(.+)\]$/, '$1')
    .toLowerCase();
  if (hostname.length > 1 && hostname.endsWith('.')) hostname = hostname.slice(0, -1);
  const port = Number.parseInt(url.port, 10) || (url.protocol === 'https:' ? 443 : 80);
  for (const entry of parseNoProxy(settings.noProxy)) {
    if (entry.port && entry.port !== port) continue;
    if (entry.hostname === '*') return undefined;
    if (!entry.wildcard && hostname === entry.hostname) return undefined;
    if (hostname.endsWith(`.${entry.hostname}`)) return undefined;
  }
  return choice;
}

/** Timeouts and pool settings of a dispatcher (undici's Agent options). */
export type ConnectionOptions = Agent.Options;

/**
 * A dispatcher for `options`: a plain Agent, or an EnvHttpProxyAgent when a proxy is set. Requests to
 * plain-HTTP servers are tunnelled (CONNECT) like HTTPS ones rather than forwarded, so that whatever
 * the proxy itself answers (a refusal, its login) arrives as a failed tunnel and is never mistaken for
 * the server's answer (tinyproxy 1.11 refuses wrong credentials with a 401 that looks like a server's).
 */
export function createDispatcher(
  options: ConnectionOptions = {},
  settings: ProxySettings = proxySettings(),
): Dispatcher {
  if (!settings.http && !settings.https) return new Agent(options);
  return new EnvHttpProxyAgent({
    ...options,
    // Given explicitly (an empty string means none), so undici routes by exactly what was checked here.
    httpProxy: settings.http?.url.href ?? '',
    httpsProxy: settings.https?.url.href ?? '',
    noProxy: settings.noProxy,
    proxyTunnel: true,
  });
}

let shared: { key: string; dispatcher: Dispatcher } | undefined;

/**
 * The dispatcher for the GitHub API and asset downloads (their timeouts are per request), made once and
 * made again only when the proxy variables change.
 */
export function sharedDispatcher(env: Env = process.env): Dispatcher {
  const names = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'];
  const key = JSON.stringify(names.map((n) => env[n] ?? null));
  if (shared?.key !== key) {
    const previous = shared?.dispatcher;
    shared = { key, dispatcher: createDispatcher({ keepAliveTimeout: 30_000 }, proxySettings(env)) };
    void previous?.close().catch(() => undefined);
  }
  return shared.dispatcher;
}

export interface ProxyFailure {
  /** What went wrong, naming the proxy without its credentials and the host asked for. */
  message: string;
  hint: string;
  /** Worth another try (the proxy down or the host behind it unreachable), or not (a refusal). */
  transient: boolean;
}

const CONNECT_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_PRX_CONN: 'the proxy closed the connection while opening the tunnel',
};

function causes(error: unknown): { code?: unknown; message?: unknown; syscall?: unknown }[] {
  const out: { code?: unknown; message?: unknown; syscall?: unknown }[] = [];
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 6; depth++) {
    out.push(e as { code?: unknown; message?: unknown });
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/**
 * When a request to `target` failed because of its proxy, says so: the proxy refused the tunnel (its
 * status), or could not be reached. Undefined when the request went direct or the failure is the
 * server's. Every request through a proxy is tunnelled, so a failure to connect is a failure to
 * connect to the proxy: the proxy, not us, connects to the server.
 */
export function proxyFailure(
  error: unknown,
  target: string | URL,
  settings: ProxySettings,
): ProxyFailure | undefined {
  const choice = proxyFor(target, settings);
  if (!choice) return undefined;
  const proxy = displayProxy(choice.url);
  const host = new URL(target).host;
  const hasCredentials = choice.url.username !== '' || choice.url.password !== '';
  for (const e of causes(error)) {
    const message = typeof e.message === 'string' ? e.message : '';
    const tunnel = /Proxy response \((\d+)\) !== 200 when HTTP Tunneling/.exec(message);
    if (tunnel) {
      const status = Number(tunnel[1]);
      if (status === 407 || status === 401) {
        return {
          message: `the proxy ${proxy} refused ${hasCredentials ? 'the credentials in' : 'to work without credentials; none are in'} ${choice.variable} (HTTP ${status}) when asked for ${host}`,
          hint: hasCredentials
            ? `check the user and password in ${choice.variable}`
            : `put the proxy's user and password in ${choice.variable}: http://user:password@host:port`,
          transient: false,
        };
      }
      if (status >= 500) {
        return {
          message: `the proxy ${proxy} could not connect to ${host} (HTTP ${status})`,
          hint: `check that ${host} is reachable from the proxy, or list it in NO_PROXY when it is reachable directly`,
          transient: true,
        };
      }
      return {
        message: `the proxy ${proxy} refused a connection to ${host} (HTTP ${status})`,
        hint: `ask the proxy's administrators to allow ${host}, or list it in NO_PROXY when it is reachable directly`,
        transient: false,
      };
    }
    if (e.code === 'UND_ERR_PRX_TLS') {
      return {
        message: `TLS with the proxy ${proxy} failed (${message || 'certificate not accepted'})`,
        hint: "check the proxy's certificate; a private CA is given with NODE_EXTRA_CA_CERTS",
        transient: false,
      };
    }
    const what = typeof e.code === 'string' ? CONNECT_CODES[e.code] : undefined;
    // A system error of an open tunnel (a read timing out) is the server's; only connecting is ours.
    const connecting =
      typeof e.syscall !== 'string' || e.syscall === 'connect' || e.syscall === 'getaddrinfo';
    if (what && connecting) {
      return {
        message: `cannot reach the proxy ${proxy} (${what}, ${String(e.code)}) to connect to ${host}`,
        hint: `check ${choice.variable}, and that the proxy runs and is reachable from this machine`,
        transient: true,
      };
    }
  }
  return undefined;
}
