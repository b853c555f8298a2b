import { at, stringAt } from '../lib/json.ts';
import type { ApiClient } from './client.ts';

/** What a list asks for: whole objects, or only their metadata (PartialObjectMetadata, as the watches list). */
export type ListShape = 'objects' | 'metadata';
const ACCEPT: Readonly<Record<ListShape, string>> = {
  objects: 'application/json',
  metadata: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json',
};

/** One collection to list: its path, and how to name it in messages and RBAC advice. */
export interface Collection {
  /** /api/v1/pods, /apis/apps/v1/deployments: every namespace. */
  readonly path: string;
  /** The API group (empty for the core group) and resource, as a ClusterRole names them. */
  readonly group: string;
  readonly resource: string;
}

export interface ListOptions {
  readonly shape: ListShape;
  /** Objects per page (`limit`): at most this many whole objects are held at once. */
  readonly pageSize: number;
  readonly labelSelector?: string;
  readonly signal?: AbortSignal;
  /** How long one page may take, from connecting to its last byte. */
  readonly pageTimeoutMs?: number;
}

/** A list that could not be done, worded for the person running podgate: what failed, and what would fix it. */
export class ListError extends Error {
  override readonly name = 'ListError';
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

/** At most this much of an error body is read and quoted: an API server's Status is a few hundred bytes. */
const MAX_ERROR_BODY = 4096;

async function readBody(body: AsyncIterable<Uint8Array>, limit = Infinity): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of body) {
    text += decoder.decode(chunk, { stream: true });
    if (text.length > limit) return text.slice(0, limit);
  }
  return text + decoder.decode();
}

function statusMessage(text: string): string {
  try {
    const status: unknown = JSON.parse(text);
    return stringAt(status, 'message') ?? text.slice(0, 300);
  } catch {
    return text.slice(0, 300);
  }
}

function resourceName(collection: Collection): string {
  return collection.group === '' ? collection.resource : `${collection.resource}.${collection.group}`;
}

/**
 * The objects of one collection, page by page (`limit` and `continue`), as the API server
 * serves a chunked list: only one page is held at a time, however large the cluster. A
 * continue token the server has let expire (410 Gone) is followed by the token its answer
 * carries, as the Kubernetes API allows: the rest of the list is then read as it is now,
 * not as of the first page, which suits an audit (objects created meanwhile are judged too).
 */
export async function* listPages(client: ApiClient, collection: Collection, options: ListOptions): AsyncGenerator<readonly unknown[]> {
  let continueToken = '';
  do {
    const url = new URL(client.server + collection.path);
    url.searchParams.set('limit', String(options.pageSize));
    if (continueToken !== '') url.searchParams.set('continue', continueToken);
    if (options.labelSelector) url.searchParams.set('labelSelector', options.labelSelector);
    const { status, text } = await getPage(client, url, collection, options);
    if (status === 410 && continueToken !== '') {
      const next = stringAt(parseOrUndefined(text), 'metadata', 'continue') ?? '';
      if (next === '') throw new ListError(`listing ${resourceName(collection)}: the API server expired the list while it was being read (HTTP 410: ${statusMessage(text)}); run the audit again`, status);
      continueToken = next;
      continue;
    }
    if (status !== 200) throw new ListError(failureMessage(client, collection, status, text), status);
    const page = parseOrUndefined(text);
    const items = at(page, 'items');
    if (!Array.isArray(items)) throw new ListError(`listing ${resourceName(collection)}: the answer from ${client.server} is not a Kubernetes list`);
    yield items as readonly unknown[];
    continueToken = stringAt(page, 'metadata', 'continue') ?? '';
  } while (continueToken !== '');
}

async function getPage(client: ApiClient, url: URL, collection: Collection, options: ListOptions): Promise<{ status: number; text: string }> {
  const timeoutMs = options.pageTimeoutMs ?? 60_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  try {
    const response = await client.get(url, ACCEPT[options.shape], signal);
    const text = await readBody(response.body, response.status === 200 || response.status === 410 ? Infinity : MAX_ERROR_BODY);
    return { status: response.status, text };
  } catch (error) {
    if (options.signal?.aborted === true) throw error;
    const reason = timeout.aborted ? `no complete answer within ${String(timeoutMs / 1000)}s` : describeNetworkError(error);
    throw new ListError(`cannot list ${resourceName(collection)}: the API server at ${client.server} did not answer (${reason}); check that it is reachable from here and that the kubeconfig's server is right`);
  }
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = 'code' in error ? String(error.code) : undefined;
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return [code, cause ?? error.message].filter((part) => part !== undefined && part !== '').join(': ');
}

function failureMessage(client: ApiClient, collection: Collection, status: number, text: string): string {
  const name = resourceName(collection);
  const said = statusMessage(text);
  if (status === 401) return `listing ${name}: the API server at ${client.server} did not accept the credentials (HTTP 401: ${said}); log in again or check the kubeconfig's user`;
  if (status === 403) {
    return `listing ${name} is forbidden (HTTP 403: ${said}); the identity running podgate needs "list" on ${name} in every namespace (a ClusterRole with apiGroups: ["${collection.group}"], resources: ["${collection.resource}"], verbs: ["list"]; manifests/components/audit has one)`;
  }
  if (status === 404) return `listing ${name}: the API server at ${client.server} does not serve ${collection.path} (HTTP 404)`;
  return `listing ${name}: HTTP ${status} from ${client.server}: ${said}`;
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
