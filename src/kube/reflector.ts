import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { at, isRecord, stringAt } from '../lib/json.ts';
import type { ApiClient, ApiResponse } from './client.ts';

/**
 * A list/watch loop over object *metadata* only, keeping a slim value per object.
 *
 * Why not client-node's informer: it keeps every object whole (a cluster's
 * worth of pods is hundreds of MB) and stops on a watch error. This asks the
 * API server for PartialObjectMetadata (what client-go's metadata informers do),
 * keeps only what `slim` returns, re-lists on 410 Gone, and reconnects with
 * capped exponential backoff on any failure, keeping the last known state.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
 */
const LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

export interface ReflectorOptions<T> {
  readonly name: string;
  readonly client: ApiClient;
  /** Collection path, e.g. /api/v1/nodes or /api/v1/pods (all namespaces). */
  readonly path: string;
  readonly labelSelector?: string;
  /** What to keep of an object's metadata; undefined drops the object. */
  readonly slim: (metadata: unknown) => T | undefined;
  readonly log: Logger;
  readonly pageSize?: number;
  /** How long one page of a list may take, from connecting to its last byte (default 60 s). */
  readonly listPageTimeoutMs?: number;
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Told of every change, after the store has it. */
  readonly onChange?: (change: { readonly type: 'upsert' | 'delete'; readonly key: string; readonly previous: T | undefined; readonly current: T | undefined }) => void;
}

export interface ReflectorStatus {
  readonly synced: boolean;
  readonly objects: number;
  readonly connected: boolean;
  readonly lastError: string | undefined;
  readonly relists: number;
}

class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** namespace/name, or name for cluster-scoped objects. */
function objectKey(metadata: unknown): string | undefined {
  const name = stringAt(metadata, 'name');
  if (name === undefined) return undefined;
  const namespace = stringAt(metadata, 'namespace');
  return namespace ? `${namespace}/${name}` : name;
}

/** A whole (non-streaming) body as text. */
async function readText(body: AsyncIterable<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of body) text += decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/** The non-empty lines of a streamed body (aborting the request ends it with an error). */
async function* ndjsonLines(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line !== '') yield line;
      newline = pending.indexOf('\n');
    }
  }
}

export class MetadataReflector<T> {
  readonly store = new Map<string, T>();
  readonly #options: ReflectorOptions<T>;
  #synced = false;
  #connected = false;
  #lastError: string | undefined;
  #relists = 0;
  #stopped = false;
  #abort = new AbortController();
  #firstSync: Promise<void>;
  #resolveFirstSync: () => void = () => undefined;

  constructor(options: ReflectorOptions<T>) {
    this.#options = options;
    this.#firstSync = new Promise((resolve) => (this.#resolveFirstSync = resolve));
  }

  get status(): ReflectorStatus {
    return { synced: this.#synced, objects: this.store.size, connected: this.#connected, lastError: this.#lastError, relists: this.#relists };
  }

  /** Starts the loop; the promise resolves at the first complete list (it never rejects: failures are retried). */
  start(): Promise<void> {
    void this.#run();
    return this.#firstSync;
  }

  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
  }

  async #run(): Promise<void> {
    const { initialMs, maxMs } = this.#options.backoff ?? { initialMs: 500, maxMs: 30_000 };
    let delay = initialMs;
    let resourceVersion: string | undefined;
    while (!this.#stopped) {
      try {
        resourceVersion ??= await this.#list();
        resourceVersion = await this.#watch(resourceVersion);
        delay = initialMs;
      } catch (error) {
        if (this.#abort.signal.aborted) return; // stop() was called
        this.#connected = false;
        if (error instanceof ApiError && error.status === 410) resourceVersion = undefined;
        this.#lastError = error instanceof Error ? error.message : String(error);
        this.#options.log.warn({ watch: this.#options.name, err: this.#lastError, retryInMs: delay }, 'cluster watch failed, retrying; the last known state stays in use');
        await sleep(delay * (0.8 + Math.random() * 0.4), undefined, { signal: this.#abort.signal }).catch(() => undefined);
        delay = Math.min(delay * 2, maxMs);
      }
    }
  }

  async #request(query: Record<string, string>, accept: string, signal: AbortSignal = this.#abort.signal): Promise<ApiResponse> {
    const url = new URL(this.#options.client.server + this.#options.path);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    if (this.#options.labelSelector) url.searchParams.set('labelSelector', this.#options.labelSelector);
    const response = await this.#options.client.get(url, accept, signal);
    if (response.status !== 200) {
      const text = await readText(response.body).catch(() => '');
      throw new ApiError(response.status, `GET ${this.#options.path}: HTTP ${response.status} ${text.slice(0, 200)}`);
    }
    return response;
  }

  /** Lists every object page by page, replaces the store, and returns the list's resourceVersion. */
  async #list(): Promise<string> {
    const fresh = new Map<string, T>();
    let continueToken = '';
    let resourceVersion: string;
    do {
      const query: Record<string, string> = { limit: String(this.#options.pageSize ?? 500) };
      if (continueToken) query['continue'] = continueToken;
      const body = await this.#listPage(query);
      for (const item of Array.isArray(at(body, 'items')) ? (at(body, 'items') as unknown[]) : []) {
        const metadata = at(item, 'metadata');
        const key = objectKey(metadata);
        const value = key === undefined ? undefined : this.#options.slim(metadata);
        if (key !== undefined && value !== undefined) fresh.set(key, value);
      }
      continueToken = stringAt(body, 'metadata', 'continue') ?? '';
      resourceVersion = stringAt(body, 'metadata', 'resourceVersion') ?? '';
    } while (continueToken !== '');
    this.#replaceStore(fresh);
    this.#relists += 1;
    this.#synced = true;
    this.#lastError = undefined;
    this.#options.log.info({ watch: this.#options.name, objects: fresh.size, resourceVersion }, 'cluster watch listed');
    this.#resolveFirstSync();
    return resourceVersion;
  }

  /** One page of the list; an API server that accepts the connection but never answers must not stall the watch forever. */
  async #listPage(query: Record<string, string>): Promise<unknown> {
    const timeoutMs = this.#options.listPageTimeoutMs ?? 60_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      return JSON.parse(await readText((await this.#request(query, LIST_ACCEPT, AbortSignal.any([this.#abort.signal, timeout]))).body));
    } catch (error) {
      if (timeout.aborted && !this.#abort.signal.aborted) throw new Error(`GET ${this.#options.path}: no complete answer within ${String(timeoutMs / 1000)}s`, { cause: error });
      throw error;
    }
  }

  #replaceStore(fresh: Map<string, T>): void {
    const onChange = this.#options.onChange;
    for (const [key, previous] of this.store) {
      if (!fresh.has(key)) {
        this.store.delete(key);
        onChange?.({ type: 'delete', key, previous, current: undefined });
      }
    }
    for (const [key, current] of fresh) {
      const previous = this.store.get(key);
      this.store.set(key, current);
      onChange?.({ type: 'upsert', key, previous, current });
    }
  }

  /** Follows the watch until the server ends it; returns the resourceVersion to resume from. */
  async #watch(from: string): Promise<string> {
    const timeoutSeconds = this.#options.watchTimeoutSeconds ?? 300;
    // A silent half-open connection must not look like a quiet cluster: give up after the server's timeout plus a margin.
    const idle = new AbortController();
    const timer = setTimeout(() => { idle.abort(new Error(`watch ${this.#options.path}: no data for ${timeoutSeconds + 30}s`)); }, (timeoutSeconds + 30) * 1000);
    const signal = AbortSignal.any([this.#abort.signal, idle.signal]);
    let resourceVersion = from;
    try {
      const query = { watch: '1', allowWatchBookmarks: 'true', resourceVersion: from, timeoutSeconds: String(timeoutSeconds) };
      const response = await this.#request(query, WATCH_ACCEPT, signal);
      this.#connected = true;
      for await (const line of ndjsonLines(response.body)) {
        timer.refresh();
        const event: unknown = JSON.parse(line);
        const type = stringAt(event, 'type');
        const object = at(event, 'object');
        if (type === 'ERROR') {
          const code = at(object, 'code');
          throw new ApiError(typeof code === 'number' ? code : 500, `watch ${this.#options.path}: ${stringAt(object, 'message') ?? 'error event'}`);
        }
        resourceVersion = stringAt(object, 'metadata', 'resourceVersion') ?? resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') this.#upsert(at(object, 'metadata'));
        else if (type === 'DELETED') this.#delete(at(object, 'metadata'));
      }
    } finally {
      clearTimeout(timer);
      this.#connected = false;
    }
    return resourceVersion;
  }

  #upsert(metadata: unknown): void {
    const key = objectKey(metadata);
    if (key === undefined || !isRecord(metadata)) return;
    const previous = this.store.get(key);
    const current = this.#options.slim(metadata);
    if (current === undefined) {
      if (this.store.delete(key)) this.#options.onChange?.({ type: 'delete', key, previous, current: undefined });
      return;
    }
    this.store.set(key, current);
    this.#options.onChange?.({ type: 'upsert', key, previous, current });
  }

  #delete(metadata: unknown): void {
    const key = objectKey(metadata);
    if (key === undefined) return;
    const previous = this.store.get(key);
    if (this.store.delete(key)) this.#options.onChange?.({ type: 'delete', key, previous, current: undefined });
  }
}
