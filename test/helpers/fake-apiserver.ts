import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeconfigClient, type ApiClient } from '../../src/kube/client.ts';

/** A kubeconfig for a plain-HTTP test server with a bearer token. */
export function kubeconfigFor(server: string): string {
  return `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true\nusers:\n- name: podgate\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: podgate\ncurrent-context: fake\n`;
}

type Obj = { metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string; [key: string]: unknown }; [key: string]: unknown };
interface Event {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
}

function selectorMatches(selector: string | null, labels: Record<string, string> = {}): boolean {
  if (!selector) return true;
  // Requirements are comma-separated; commas inside `in (a,b)` belong to the set.
  return selector.split(/,(?![^(]*\))/).every((part) => {
    const set = /^(\S+) (in|notin) \(([^)]*)\)$/.exec(part);
    if (set) {
      const [, key = '', operator, values = ''] = set;
      const listed = key in labels && values.split(',').includes(labels[key] ?? '');
      return operator === 'in' ? listed : !listed;
    }
    if (part.startsWith('!')) return !(part.slice(1) in labels);
    const notEqual = part.split('!=');
    if (notEqual.length === 2) return labels[notEqual[0] ?? ''] !== notEqual[1];
    const [key = '', value] = part.split('=');
    return value === undefined ? key in labels : labels[key] === value;
  });
}

/**
 * A local server that speaks the Kubernetes list/watch protocol for a few
 * collections: paginated lists with resourceVersion, watches from a
 * resourceVersion with ADDED/MODIFIED/DELETED/BOOKMARK events, 410 Gone for a
 * version that is too old, and knobs to drop connections or refuse service.
 */
export class FakeApiServer {
  readonly requests: { path: string; query: URLSearchParams; accept: string | undefined }[] = [];
  #server: Server;
  token = 'test-token';

  /** Plain HTTP, or HTTPS with `tls` (as the in-cluster API server is). */
  constructor(tls?: { cert: string; key: string }) {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res);
    };
    this.#server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  }
  #sockets = new Set<Socket>();
  #collections = new Map<string, Map<string, Obj>>();
  #history = new Map<string, Event[]>();
  #watchers = new Map<string, Set<{ res: ServerResponse; selector: string | null }>>();
  #rv = 100;
  #oldestWatchable = 0;
  down = false;
  /** Accept requests and never answer them (a hung API server, or one behind a black hole that accepts). */
  silent = false;
  /** Collection paths whose lists are refused 403, as RBAC refuses them. */
  readonly forbidden = new Set<string>();
  /** Continue tokens answered 410 Gone once (an expired list), with the token the API server offers to go on inconsistently. */
  readonly expiredContinue = new Map<string, string | undefined>();

  async start(): Promise<string> {
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    return `${'setSecureContext' in this.#server ? 'https' : 'http'}://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  /** Starts the server and returns a client for it, through a kubeconfig file and client-node (as out of a cluster). */
  async client(dir = mkdtempSync(join(tmpdir(), 'fake-api-'))): Promise<ApiClient> {
    const server = await this.start();
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, kubeconfigFor(server));
    return (await kubeconfigClient(path)).client;
  }

  /** Serves another certificate from now on, and drops every connection (a rotated cluster CA). */
  rotate(tls: { cert: string; key: string }): void {
    if (!(this.#server instanceof HttpsServer)) throw new Error('a plain-HTTP fake has no certificate to rotate');
    this.#server.setSecureContext(tls);
    for (const socket of this.#sockets) socket.destroy();
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => { resolve(); }));
  }

  #collection(path: string): Map<string, Obj> {
    let collection = this.#collections.get(path);
    if (!collection) {
      collection = new Map();
      this.#collections.set(path, collection);
      this.#history.set(path, []);
      this.#watchers.set(path, new Set());
    }
    return collection;
  }

  #emit(path: string, type: Event['type'], object: Obj): void {
    this.#rv += 1;
    const stamped: Obj = { ...object, metadata: { ...object.metadata, resourceVersion: String(this.#rv) } };
    const collection = this.#collection(path);
    const key = `${stamped.metadata.namespace ?? ''}/${stamped.metadata.name}`;
    if (type === 'DELETED') collection.delete(key);
    else collection.set(key, stamped);
    const event = { rv: this.#rv, type, object: stamped };
    this.#history.get(path)?.push(event);
    for (const watcher of this.#watchers.get(path) ?? []) {
      if (selectorMatches(watcher.selector, stamped.metadata.labels)) watcher.res.write(`${JSON.stringify({ type, object: { metadata: stamped.metadata } })}\n`);
    }
  }

  add(path: string, object: Obj): void {
    this.#emit(path, 'ADDED', object);
  }
  modify(path: string, object: Obj): void {
    this.#emit(path, 'MODIFIED', object);
  }
  remove(path: string, object: Obj): void {
    this.#emit(path, 'DELETED', object);
  }
  /** Events older than now can no longer be watched from: the next watch from an old version gets 410 Gone. */
  compact(): void {
    this.#oldestWatchable = this.#rv;
  }
  /** Ends every open watch (as a load balancer or an API server restart would). */
  dropWatches(): void {
    for (const set of this.#watchers.values()) for (const watcher of set) watcher.res.socket?.destroy();
  }
  /** Sends a watch ERROR event with 410 Gone on every open watch. */
  expireWatches(): void {
    for (const set of this.#watchers.values()) {
      for (const watcher of set) watcher.res.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
    }
  }
  openWatches(): number {
    return this.openWatchSelectors().length;
  }
  /** The label selector of each open watch (null for none), so a test can tell an old watch from its replacement. */
  openWatchSelectors(): (string | null)[] {
    return [...this.#watchers.values()].flatMap((set) => [...set].map((watcher) => watcher.selector));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    this.requests.push({ path: url.pathname, query: url.searchParams, accept: req.headers.accept });
    if (req.headers.authorization !== `Bearer ${this.token}`) { this.#status(res, 401, 'Unauthorized'); return; }
    if (this.down) { this.#status(res, 503, 'ServiceUnavailable'); return; }
    if (this.silent) return;
    if (this.forbidden.has(url.pathname)) {
      const resource = url.pathname.split('/').at(-1) ?? '';
      const group = url.pathname.startsWith('/apis/') ? (url.pathname.split('/')[2] ?? '') : '';
      this.#status(res, 403, 'Forbidden', `${resource}${group ? `.${group}` : ''} is forbidden: User "system:serviceaccount:podgate:podgate" cannot list resource "${resource}" in API group "${group}" at the cluster scope`);
      return;
    }
    const collection = this.#collection(url.pathname);
    const selector = url.searchParams.get('labelSelector');
    if (url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true') {
      const from = Number(url.searchParams.get('resourceVersion') ?? '0');
      if (from < this.#oldestWatchable) { this.#status(res, 410, 'Expired', 'too old resource version'); return; }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      for (const event of this.#history.get(url.pathname) ?? []) {
        if (event.rv > from && selectorMatches(selector, event.object.metadata.labels)) res.write(`${JSON.stringify({ type: event.type, object: { metadata: event.object.metadata } })}\n`);
      }
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(this.#rv) } } })}\n`);
      const watcher = { res, selector };
      this.#watchers.get(url.pathname)?.add(watcher);
      res.on('close', () => this.#watchers.get(url.pathname)?.delete(watcher));
      return;
    }
    const items = [...collection.values()].filter((object) => selectorMatches(selector, object.metadata.labels)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const limit = Number(url.searchParams.get('limit') ?? '0') || items.length;
    const token = url.searchParams.get('continue') ?? '';
    if (this.expiredContinue.has(token)) {
      const next = this.expiredContinue.get(token);
      this.expiredContinue.delete(token);
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: next === undefined ? {} : { continue: next }, status: 'Failure', code: 410, reason: 'Expired', message: 'The provided continue parameter is too old to display a consistent list result.' }));
      return;
    }
    const start = Number(token || '0');
    const page = items.slice(start, start + limit);
    const next = start + limit < items.length ? String(start + limit) : undefined;
    res.writeHead(200, { 'content-type': 'application/json' });
    // Metadata only when asked for it (the watches); whole objects otherwise (an audit), without apiVersion and kind as a real list's items.
    const metadataOnly = req.headers.accept?.includes('as=PartialObjectMetadataList') === true;
    const listMeta = { resourceVersion: String(this.#rv), ...(next ? { continue: next } : {}) };
    const shaped = page.map((o) => {
      if (metadataOnly) return { metadata: o.metadata };
      const item: Record<string, unknown> = { ...o };
      delete item['apiVersion'];
      delete item['kind'];
      return item;
    });
    res.end(JSON.stringify({ kind: metadataOnly ? 'PartialObjectMetadataList' : 'List', apiVersion: metadataOnly ? 'meta.k8s.io/v1' : 'v1', metadata: listMeta, items: shaped }));
  }

  #status(res: ServerResponse, code: number, reason: string, message = reason): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }));
  }
}
