import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { AdmissionGate } from './gate.ts';
import { ConnectionLimit } from './connections.ts';
import { Metrics } from './metrics.ts';
import type { Logger } from 'pino';
import { decide } from '../engine/decide.ts';
import type { Decision } from '../engine/decision.ts';
import { admissionResponse } from './response.ts';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BODY_STEP_CHARS, readAdmissionReview, readInTurns, type AdmissionRequest, type ReadReview } from '../admission/review.ts';
import { objectName } from '../policy/workload.ts';
import type { ClusterState } from '../policy/cluster.ts';
import type { Policy } from '../policy/policy.ts';
import type { Phase } from '../policy/rule.ts';
import type { Readiness } from './readiness.ts';

/**
 * Large enough for an UPDATE review of the biggest object etcd stores (1.5 MiB)
 * twice over, JSON-escaped, plus the envelope; small enough that a flood of huge
 * bodies cannot exhaust memory.
 */
export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;
/** Lag past which admission requests are shed (ms): far above a healthy podgate's, well under the API server's 10 s timeout. */
export const DEFAULT_MAX_EVENT_LOOP_DELAY_MS = 1000;
/**
 * Bytes of admission bodies being received or decided at once. A body costs about
 * four times its size while it is read and parsed (the string, then the objects), so
 * two maximum-size reviews at once stay inside the memory the Deployment gives podgate
 * beside its caches; real reviews are a few KiB, so this is ~2,000 of them at once.
 */
export const DEFAULT_MAX_INFLIGHT_BYTES = 16 * 1024 * 1024;
/**
 * The whole request, headers and body, must arrive within this (ms): well inside the
 * API server's webhook timeout (podgate's webhooks set 5 s), so a client trickling a
 * body a byte at a time holds a connection for seconds, not minutes.
 */
const REQUEST_TIMEOUT_MS = 10_000;
/** A TLS handshake not finished within this (ms) is dropped (Node's default is 120 s). */
const HANDSHAKE_TIMEOUT_MS = 5_000;
/**
 * TLS and HTTP deadlines, given when the server is constructed: Node reads
 * headersTimeout and connectionsCheckingInterval only then (Fastify sets
 * requestTimeout afterwards, which alone left a trickled body open for 60 s, the
 * default headersTimeout, checked every 30 s).
 */
const SERVER_TIMEOUTS = {
  minVersion: 'TLSv1.2',
  handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  requestTimeout: REQUEST_TIMEOUT_MS,
  headersTimeout: REQUEST_TIMEOUT_MS,
  connectionsCheckingInterval: 1000,
} as const;

/** At most one log line per this many ms about uploads (gate.ts), and one about connections (connections.ts), cut to make room. */
const EVICTION_LOG_INTERVAL_MS = 10_000;

/**
 * A connection that reads nothing for this long is closed (ms). Node closes one idle after a
 * response at the keep-alive timeout (120 s) but never one that has not sent a request.
 */
const SILENT_CONNECTION_TIMEOUT_MS = 130_000;

/** Open connections at most (shared fairly between client addresses: connections.ts); an idle TLS connection holds ~40 KiB. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

export interface AppDeps {
  readonly logger: Logger;
  /** The policy in force, read once per request (a reload swaps it between requests). */
  readonly policy: () => Policy | undefined;
  readonly cluster: () => ClusterState;
  readonly readiness: () => Readiness;
  /** PEM key and certificate; without them the app serves plain HTTP (only for `inject` in unit tests). */
  readonly tls?: { readonly key: string; readonly cert: string };
  readonly bodyLimit?: number;
  readonly metrics?: Metrics;
  /**
   * Load shedding: while the event loop lags more than this, admission requests are
   * answered 503 at once instead of queueing past the API server's timeout (the
   * webhook's failurePolicy then decides). 0 turns it off.
   */
  readonly maxEventLoopDelayMs?: number;
  /** Load shedding by memory: admission bodies being received or decided at once, in bytes. */
  readonly maxInflightBytes?: number;
  readonly maxConnections?: number;
  /** A connection that reads nothing for this long is closed (ms); tests shorten it. */
  readonly silentConnectionTimeoutMs?: number;
  /** Told of every review the validating webhook admitted (the KPO pod index counts new pods at once). */
  readonly onAdmitted?: (request: AdmissionRequest) => void;
}

/**
 * The HTTP shell around `decide`: it parses and checks the review, asks the
 * pure core, logs one line, and answers. It does not listen; main.ts does.
 */
export function buildApp(deps: AppDeps) {
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const metrics = deps.metrics ?? new Metrics();
  // A client that keeps filling a budget would otherwise write a line per upload or connection it makes.
  const lastLogged = { upload: 0, connection: 0 };
  const evicted = (what: 'upload' | 'connection', client: string) => {
    metrics.rejected('evicted');
    const now = Date.now();
    if (now - lastLogged[what] < EVICTION_LOG_INTERVAL_MS) return;
    lastLogged[what] = now;
    const budget = what === 'upload' ? 'the in-flight budget' : 'the connection limit';
    deps.logger.warn({ client }, `cut ${what === 'upload' ? 'an upload' : 'a connection'} from the client holding the most of ${budget}, to make room for one holding less (podgate_http_rejected_total{reason="evicted"} counts them all)`);
  };
  const gate = new AdmissionGate({
    bodyLimit,
    maxInflightBytes: deps.maxInflightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES,
    maxEventLoopDelayMs: deps.maxEventLoopDelayMs ?? DEFAULT_MAX_EVENT_LOOP_DELAY_MS,
    onShed: () => { metrics.rejected('overloaded'); },
    onEvict: (client) => { evicted('upload', client); },
  });
  const connections = new ConnectionLimit({
    maxConnections: deps.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    silentTimeoutMs: deps.silentConnectionTimeoutMs ?? SILENT_CONNECTION_TIMEOUT_MS,
    idleAfterMs: 1000,
    onEvict: (client) => { evicted('connection', client); },
  });
  // The server is built here, not by Fastify, so the gate sees each request before Fastify does (see gate.ts).
  const serverFactory = (handler: RequestListener) => {
    const gated = (request: IncomingMessage, response: ServerResponse) => {
      if (gate.admit(request, response)) handler(request, response);
    };
    // The API server keeps connections open between calls; outlive its idle timeout (90 s) so it closes them, not us.
    const server = deps.tls ? createHttpsServer({ ...deps.tls, ...SERVER_TIMEOUTS, keepAliveTimeout: 120_000 }, gated) : createHttpServer({ keepAliveTimeout: 120_000, requestTimeout: REQUEST_TIMEOUT_MS }, gated);
    connections.watch(server);
    return server;
  };
  // No logger for Fastify: podgate writes its own line per decision (below) and per fault (the
  // error handler). Given a logger, Fastify binds a child logger to every request and listens for
  // each response's 'finish' and 'error' to log request lines: work podgate would pay for on every
  // review only to switch the lines off (an A/B in one run: 77% -> 80% of the bench's baseline). What
  // Fastify would still have logged is its "Server listening" line (podgate logs its own) and
  // warnings about misuse of its API.
  const app = Fastify({ bodyLimit, serverFactory, forceCloseConnections: 'idle' });
  app.addHook('onClose', (_instance, done) => {
    gate.stop();
    connections.stop();
    done();
  });
  // The API server always sends JSON, but curl -d sends form encoding: every body is read as text, and
  // the handler reads it as JSON (readAdmissionReview: scanned before it is parsed), with a clear error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_request, body, done) => {
    done(null, String(body));
  });

  app.setErrorHandler((error: { statusCode?: number; message?: string; code?: string }, request, reply) => {
    gate.release(request.raw); // a body that could not be read or parsed is done with
    const statusCode = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (statusCode >= 500) {
      deps.logger.error({ err: error, url: request.url }, 'request failed');
      return reply.code(statusCode).send({ error: 'internal error; see the podgate logs' });
    }
    const tooLarge = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE';
    metrics.rejected(tooLarge ? 'too_large' : 'bad_request');
    const message = tooLarge ? `request body exceeds ${bodyLimit} bytes` : (error.message ?? 'bad request');
    return reply.code(statusCode).send({ error: message });
  });
  app.setNotFoundHandler((request, reply) => {
    gate.release(request.raw);
    return reply.code(404).send({ error: `no route ${request.method} ${request.url}; podgate serves POST /mutate, POST /validate, GET /healthz, GET /readyz (GET /metrics is on the operations port)` });
  });

  // The handler answers through reply.send and returns nothing: a returned reply is a thenable,
  // which Fastify would then wait on with a promise and 'finish' listeners, for every review.
  // Once it has answered, the body is judged and done with: its bytes go back to the gate's budget.
  const admit = (phase: Phase) => (request: FastifyRequest, reply: FastifyReply): void => {
    const started = performance.now();
    const body = request.body;
    if (typeof body === 'string' && body.length > BODY_STEP_CHARS) {
      readInTurns(body, nextTurn)
        .then(async (read) => {
          await nextTurn(); // the last parse step had this turn; the rules get the next
          answerReview(deps, metrics, phase, read, reply, started);
        })
        .catch((error: unknown) => reply.send(error))
        .finally(() => { gate.release(request.raw); });
      return;
    }
    try {
      answerReview(deps, metrics, phase, typeof body === 'string' ? readAdmissionReview(body) : EMPTY_BODY, reply, started);
    } finally {
      gate.release(request.raw);
    }
  };
  app.post('/mutate', admit('mutate'));
  app.post('/validate', admit('validate'));
  app.get('/healthz', () => ({ status: 'ok' }));
  // Anyone who can reach the webhook port can ask: say which checks pass, not their details (policy paths, errors that quote the policy).
  app.get('/readyz', (_request, reply) => {
    const state = deps.readiness();
    return reply.code(state.ready ? 200 : 503).send(readinessSummary(state));
  });
  return app;
}

/**
 * The operations port: metrics and readiness in detail, for Prometheus and for
 * whoever debugs podgate. Kept off the webhook port, which every pod in the cluster
 * can reach: rule and environment names, the policy path and the text of a rejected
 * policy are nobody else's business.
 */
export function buildOpsApp(deps: Pick<AppDeps, 'readiness' | 'tls'> & { readonly metrics: Metrics; readonly logger: Logger }) {
  const app = Fastify({
    ...(deps.tls ? { https: { ...deps.tls, ...SERVER_TIMEOUTS } } : {}),
    requestTimeout: REQUEST_TIMEOUT_MS,
    forceCloseConnections: 'idle',
  });
  app.server.maxConnections = 64;
  app.setErrorHandler((error, request, reply) => {
    deps.logger.error({ err: error, url: request.url }, 'request failed');
    return reply.code(500).send({ error: 'internal error; see the podgate logs' });
  });
  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) => reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()));
  app.get('/readyz', (_request, reply) => {
    const state = deps.readiness();
    return reply.code(state.ready ? 200 : 503).send(state);
  });
  return app;
}

/** Readiness without details: which checks pass. */
function readinessSummary(state: Readiness): { ready: boolean; checks: Record<string, { ok: boolean }> } {
  const checks: Record<string, { ok: boolean }> = {};
  for (const [name, check] of Object.entries(state.checks)) checks[name] = { ok: check.ok };
  return { ready: state.ready, checks };
}

const EMPTY_BODY: ReadReview = { ok: false, error: 'request body is empty; POST an AdmissionReview' };

function answerReview(deps: AppDeps, metrics: Metrics, phase: Phase, parsed: ReadReview, reply: FastifyReply, started: number): FastifyReply {
  if (!parsed.ok) {
    metrics.rejected('bad_request');
    return reply.code(400).send({ error: parsed.error });
  }
  const policy = deps.policy();
  if (policy === undefined) {
    metrics.rejected('no_policy');
    return reply.code(503).send({ error: 'no valid policy is loaded yet; see /readyz' });
  }

  const { apiVersion, request: admission } = parsed.review;
  const decision = decide(phase, admission, policy, deps.cluster(), parsed.oversized);
  if (phase === 'validate' && decision.allowed) deps.onAdmitted?.(admission);
  const latencyMs = performance.now() - started;
  metrics.decision(phase, admission.operation, admission.kind.kind, decision, latencyMs / 1000);
  const level = decisionLogLevel(decision);
  if (deps.logger.isLevelEnabled(level)) deps.logger[level](decisionLogFields(phase, admission, decision, latencyMs), decision.allowed ? 'admitted' : 'denied');
  return reply.send(admissionResponse(apiVersion, admission.uid, decision));
}

/**
 * A decision in which a rule threw is logged at error; one that did something
 * (denied, warned, patched, a rule failed) at info; an admission with nothing to report only at debug
 * (LOG_LEVEL=debug). Every pod of the cluster goes through podgate, the API
 * server's audit log already records each request, and the metrics count them;
 * writing the uneventful ones too cost about 15% of podgate's throughput (npm run bench).
 */
function decisionLogLevel(decision: Decision): 'error' | 'info' | 'debug' {
  let level: 'info' | 'debug' = !decision.allowed || decision.warnings.length > 0 || decision.patch.length > 0 ? 'info' : 'debug';
  for (const report of decision.reports) {
    if (report.status === 'error') return 'error'; // a rule that threw is a fault in podgate or its policy: someone must look
    if (report.status !== 'pass') level = 'info';
  }
  return level;
}

/** The log line of a decision: who asked for what and what podgate said. Never the object itself (env vars carry secrets). */
function decisionLogFields(phase: Phase, request: AdmissionRequest, decision: Decision, latencyMs: number) {
  const object = request.operation === 'DELETE' ? request.oldObject : request.object;
  return {
    uid: request.uid,
    webhook: phase,
    operation: request.operation,
    kind: request.kind.kind,
    ...(request.subResource ? { subResource: request.subResource } : {}),
    namespace: request.namespace,
    name: objectName(request, object),
    user: request.userInfo.username,
    ...(request.dryRun ? { dryRun: true } : {}),
    rules: decision.reports.filter((report) => report.status !== 'pass' || report.patched).map(({ rule, status, action, patched, message }) => ({
      rule,
      status,
      action,
      ...(patched ? { patched } : {}),
      ...(message !== undefined && status !== 'pass' ? { message } : {}),
    })),
    allowed: decision.allowed,
    ...(decision.patch.length > 0 ? { patchOps: decision.patch.length } : {}),
    ...(decision.warnings.length > 0 ? { warnings: decision.warnings.length } : {}),
    latencyMs: Math.round(latencyMs * 1000) / 1000,
  };
}
