import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { ensureDevCertificates } from '../certs/files.ts';
import { loadAndWatchPolicy } from '../config/load.ts';
import { PolicyStore } from '../config/store.ts';
import { connectToCluster } from '../kube/connect.ts';
import { ClusterWatches } from '../kube/watches.ts';
import { startBackgroundAudit } from '../kube/audit.ts';
import { compilePolicy } from '../policy/registry.ts';
import { buildApp, buildOpsApp, DEFAULT_BODY_LIMIT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_EVENT_LOOP_DELAY_MS, DEFAULT_MAX_INFLIGHT_BYTES } from '../server/app.ts';
import { Metrics } from '../server/metrics.ts';
import { policyCheck, readiness } from '../server/readiness.ts';
import { describeCertificate, readTlsFiles, watchTls, type TlsMaterial } from '../server/tls.ts';
import { createLogger } from './logger.ts';
import { UsageError, type CommandIO } from './io.ts';

/** The sample policy shipped in the repository (the same file the manifests' ConfigMap is generated from). */
export const DEFAULT_POLICY_PATH = fileURLToPath(new URL('../../manifests/base/podgate.yaml', import.meta.url));
const DEV_CERT_HOSTS = ['localhost', '127.0.0.1', '::1'];

export const SERVE_HELP = `Usage: podgate serve [options]

Serves the admission webhooks over HTTPS: POST /mutate, POST /validate,
GET /healthz, GET /readyz (which checks pass); and on the operations port
GET /metrics and GET /readyz with each check's detail.

Options:
  --config <file>         policy file (env PODGATE_CONFIG; default: the sample policy
                          ${DEFAULT_POLICY_PATH})
  --port <n>              HTTPS port of the webhooks (default 8443)
  --metrics-port <n>      HTTPS port of /metrics and detailed /readyz (default 8444)
  --host <addr>           address to listen on (default ::, every IPv6 and IPv4
                          address; 0.0.0.0 where there is no IPv6)
  --tls-cert <file>       serving certificate (PEM), reloaded when it changes
  --tls-key <file>        its private key (PEM)
  --certs-dir <dir>       without --tls-cert: where a self-signed CA and serving
                          certificate are generated and reused (default ./certs)
  --cert-host <name>      without --tls-cert: one more DNS name or IP for the
                          generated certificate (repeatable)
  --kubeconfig <file>     where to reach the API server for the watches rules need
                          (default: in-cluster service account, else $KUBECONFIG,
                          else ~/.kube/config, else offline)
  --offline               no watches: rules that read cluster state judge by names
  --max-request-bytes <n> largest AdmissionReview accepted (default ${DEFAULT_BODY_LIMIT})
  --max-inflight-bytes <n>
                          admission bodies read or judged at once; beyond it, 503 at
                          once (default ${DEFAULT_MAX_INFLIGHT_BYTES})
  --max-connections <n>   open connections at most, shared fairly between client
                          addresses (default ${DEFAULT_MAX_CONNECTIONS})
  --shutdown-timeout <s>  on SIGTERM, SIGINT or SIGHUP, how long to wait for requests in
                          flight (default 25)
  --max-event-loop-delay <ms>
                          load shedding: while the event loop lags more than this,
                          answer admission requests 503 at once (default ${DEFAULT_MAX_EVENT_LOOP_DELAY_MS}; 0: off)
  --log-format <fmt>      json or pretty (default: pretty on a terminal, else json)
  --audit-interval <s>    audit the cluster in the background every <s> seconds, as
                          podgate audit does, into the podgate_audit_* metrics (default
                          0: off; needs the ClusterRole of manifests/components/audit)

Environment:
  LOG_LEVEL               info (default): decisions that did something, and events;
                          debug: also every admission with nothing to report

Example:
  podgate serve --config /etc/podgate/podgate.yaml \\
    --tls-cert /etc/podgate/tls/tls.crt --tls-key /etc/podgate/tls/tls.key
`;

interface ServeOptions {
  readonly configPath: string;
  readonly port: number;
  readonly metricsPort: number;
  readonly host: string;
  readonly tls: { readonly certPath: string; readonly keyPath: string } | undefined;
  readonly certsDir: string;
  readonly certHosts: readonly string[];
  readonly bodyLimit: number;
  readonly maxInflightBytes: number;
  readonly maxConnections: number;
  readonly shutdownTimeoutMs: number;
  readonly maxEventLoopDelayMs: number;
  readonly pretty: boolean | undefined;
  readonly kubeconfig: string | undefined;
  readonly offline: boolean;
  /** Seconds between background audits; 0: none. */
  readonly auditIntervalSeconds: number;
}

function wholeNumber(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min) throw new UsageError(`--${name} must be a whole number of at least ${min}, got "${raw}"`, SERVE_HELP);
  return value;
}

export function parseServeArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ServeOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h' },
      config: { type: 'string' },
      port: { type: 'string' },
      'metrics-port': { type: 'string' },
      host: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'certs-dir': { type: 'string' },
      'cert-host': { type: 'string', multiple: true },
      'max-request-bytes': { type: 'string' },
      'max-inflight-bytes': { type: 'string' },
      'max-connections': { type: 'string' },
      kubeconfig: { type: 'string' },
      offline: { type: 'boolean' },
      'shutdown-timeout': { type: 'string' },
      'max-event-loop-delay': { type: 'string' },
      'log-format': { type: 'string' },
      'audit-interval': { type: 'string' },
    },
  });
  if (values.help) return 'help';
  const certPath = values['tls-cert'];
  const keyPath = values['tls-key'];
  if ((certPath === undefined) !== (keyPath === undefined)) throw new UsageError('--tls-cert and --tls-key go together', SERVE_HELP);
  const format = values['log-format'];
  if (format !== undefined && format !== 'json' && format !== 'pretty') throw new UsageError(`--log-format is json or pretty, got "${format}"`, SERVE_HELP);
  const port = wholeNumber('port', values.port, 8443, 0); // 0: any free port (tests)
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`, SERVE_HELP);
  const metricsPort = wholeNumber('metrics-port', values['metrics-port'], 8444, 0);
  if (metricsPort > 65535) throw new UsageError(`--metrics-port must be at most 65535, got ${metricsPort}`, SERVE_HELP);
  if (metricsPort === port && port !== 0) throw new UsageError(`--metrics-port must differ from --port (both ${port})`, SERVE_HELP);
  return {
    configPath: values.config ?? (env['PODGATE_CONFIG'] || DEFAULT_POLICY_PATH),
    port,
    metricsPort,
    host: values.host ?? ANY_ADDRESS,
    tls: certPath !== undefined && keyPath !== undefined ? { certPath, keyPath } : undefined,
    certsDir: values['certs-dir'] ?? 'certs',
    certHosts: [...DEV_CERT_HOSTS, ...(values['cert-host'] ?? [])],
    bodyLimit: wholeNumber('max-request-bytes', values['max-request-bytes'], DEFAULT_BODY_LIMIT),
    maxInflightBytes: wholeNumber('max-inflight-bytes', values['max-inflight-bytes'], DEFAULT_MAX_INFLIGHT_BYTES),
    maxConnections: wholeNumber('max-connections', values['max-connections'], DEFAULT_MAX_CONNECTIONS),
    shutdownTimeoutMs: wholeNumber('shutdown-timeout', values['shutdown-timeout'], 25) * 1000,
    maxEventLoopDelayMs: wholeNumber('max-event-loop-delay', values['max-event-loop-delay'], DEFAULT_MAX_EVENT_LOOP_DELAY_MS, 0),
    pretty: format === undefined ? undefined : format === 'pretty',
    kubeconfig: values.kubeconfig,
    offline: values.offline ?? false,
    auditIntervalSeconds: wholeNumber('audit-interval', values['audit-interval'], 0, 0),
  };
}

/** Given certificate files, or the self-signed development set in --certs-dir. */
async function serverCertificate(options: ServeOptions, log: Logger): Promise<{ material: TlsMaterial; certPath: string; keyPath: string }> {
  if (options.tls) return { material: await readTlsFiles(options.tls.certPath, options.tls.keyPath), ...options.tls };
  const dev = await ensureDevCertificates(options.certsDir, options.certHosts);
  log.info(
    { caPath: dev.caPath, caBundle: dev.caBundle, certificateHosts: options.certHosts, generated: dev.generated, ...(dev.replaced ? { replacedBecause: dev.replaced } : {}) },
    `${dev.generated ? 'generated' : 'reusing'} a self-signed CA and serving certificate in ${dev.dir} (no --tls-cert given); ` +
      `trust it with --cacert ${dev.caPath} (the caBundle field is the same CA for a webhook configuration). ` +
      `The certificate is valid for ${options.certHosts.join(', ')} only; add --cert-host <name> for others (in a cluster, the Service's DNS name).`,
  );
  return { material: await readTlsFiles(dev.certPath, dev.keyPath), certPath: dev.certPath, keyPath: dev.keyPath };
}

export async function serve(argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const options = parseServeArgs(argv, env);
  if (options === 'help') {
    io.out(SERVE_HELP);
    return 0;
  }
  const log = createLogger(options.pretty === undefined ? {} : { pretty: options.pretty });

  const connection = await connectToCluster(options, env);
  log.info({ cluster: connection.mode }, `cluster watches: ${connection.detail}`);
  const watches = new ClusterWatches(connection, log);
  const store = new PolicyStore(options.configPath);
  // Read at scrape time, once currentReadiness (below) exists.
  const metrics = new Metrics(() => watches.statuses(), () => currentReadiness().ready);
  const policyWatch = await loadAndWatchPolicy({
    path: options.configPath,
    store,
    compile: compilePolicy,
    log,
    onLoad: (policy) => {
      watches.ensure(policy);
      metrics.policyLoaded(new Date());
    },
    onReject: () => {
      metrics.policyRejected();
    },
  });
  if (store.current === undefined) {
    // Not fatal: exiting would crash-loop every replica restarted after one bad ConfigMap edit. Not ready
    // instead, so a rollout stalls while the old replicas keep serving; admission is answered 503 (the
    // webhooks fail open) until the file is fixed, which the watch picks up without a restart.
    io.err(`podgate: the policy ${options.configPath} is not valid; serving not-ready until it is fixed:\n${store.status.lastError?.errors.join('\n') ?? ''}\n`);
  }

  const certificate = await serverCertificate(options, log);
  let shuttingDown = false;
  const currentReadiness = () =>
    readiness({
      policy: policyCheck(store.status),
      ...watches.checks(),
      serving: shuttingDown ? { ok: false, detail: 'shutting down' } : { ok: true, detail: 'accepting requests' },
    });
  const app = buildApp({
    logger: log,
    policy: () => store.current,
    cluster: () => watches.state,
    readiness: currentReadiness,
    tls: certificate.material,
    bodyLimit: options.bodyLimit,
    metrics,
    maxEventLoopDelayMs: options.maxEventLoopDelayMs,
    maxInflightBytes: options.maxInflightBytes,
    maxConnections: options.maxConnections,
    onAdmitted: (request) => { watches.admitted(request); },
  });
  const audits = options.auditIntervalSeconds > 0 && connection.mode !== 'offline' ? startBackgroundAudit({
    client: connection.client,
    intervalMs: options.auditIntervalSeconds * 1000,
    policy: () => store.current,
    cluster: () => watches.state,
    ready: () => currentReadiness().ready,
    onResult: (audit, seconds) => {
      const policy = store.current;
      // Every auditing rule of the policy, 0 where it found nothing: a dashboard sees drift go down, not a series vanish.
      const found = [...audit.rules.values()];
      const silent = (policy?.steps.audit ?? []).filter(({ rule }) => !found.some((tally) => tally.rule === rule.name));
      const rules = [...found, ...silent.map(({ rule }) => ({ rule: rule.name, ruleKind: rule.kind, action: rule.action, count: 0 }))];
      metrics.auditCompleted(rules, new Date(), seconds);
      log.info({ objects: Object.fromEntries(audit.objects), findings: found.map(({ rule, action, count }) => ({ rule, action, count })), seconds: Math.round(seconds * 1000) / 1000 }, 'background audit done');
    },
    onFailure: (error) => {
      metrics.auditFailed();
      log.error({ err: error instanceof Error ? error.message : String(error) }, 'background audit failed; the last results stay in the metrics');
    },
  }) : undefined;
  if (options.auditIntervalSeconds > 0 && connection.mode === 'offline') log.warn({ cluster: connection.detail }, '--audit-interval given, but there is no cluster to audit');
  const ops = buildOpsApp({ logger: log, metrics, readiness: currentReadiness, tls: certificate.material });
  let host = options.host;
  try {
    host = await listenOn(app, options.port, host, '--port');
    await listenOn(ops, options.metricsPort, host, '--metrics-port');
  } catch (error) {
    // Said in the log too, after everything already buffered there, so its last line is not a healthy one.
    const message = error instanceof Error ? error.message : String(error);
    log.error({ port: options.port, metricsPort: options.metricsPort, host }, message);
    log.flush();
    policyWatch.close();
    watches.stop();
    audits?.stop();
    await Promise.allSettled([app.close(), ops.close()]);
    io.err(`podgate: ${message}\n`);
    return 1;
  }
  if (!(app.server instanceof TlsServer) || !(ops.server instanceof TlsServer)) throw new Error('podgate serves HTTPS only, but the server is not a TLS server');
  const tlsWatches = [app.server, ops.server].map((server) => watchTls({ server, ...certificate, current: certificate.material, log }));
  const port = listeningPort(app.server, options.port);
  const metricsPort = listeningPort(ops.server, options.metricsPort);
  log.info({ port, metricsPort, host, certificate: describeCertificate(certificate.material.cert) }, `podgate listening on https://${host.includes(':') ? `[${host}]` : host}:${port} (metrics on ${metricsPort})`);

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (shuttingDown) return;
      shuttingDown = true;
      log.info({ signal }, 'stopping: no new connections, finishing requests in flight');
      const force = setTimeout(() => {
        log.error({ timeoutMs: options.shutdownTimeoutMs }, 'requests still in flight at the shutdown timeout; exiting anyway');
        setTimeout(() => process.exit(1), 1000).unref();
        resolve(1);
      }, options.shutdownTimeoutMs);
      force.unref();
      policyWatch.close();
      for (const watch of tlsWatches) watch.close();
      watches.stop();
      audits?.stop();
      Promise.all([app.close(), ops.close()]).then(
        () => {
          clearTimeout(force);
          log.info('stopped');
          try {
            log.flush();
          } catch {
            // stdout is gone; nothing left to tell
          }
          // Normally the process ends here by itself. A log line stuck on a stdout nobody reads
          // (a dead log collector) must not keep it alive: give the logs a moment, then go.
          setTimeout(() => process.exit(process.exitCode ?? 0), 3000).unref();
          resolve(0);
        },
        (error: unknown) => {
          log.error({ err: error }, 'error while stopping');
          resolve(1);
        },
      );
    };
    // SIGHUP too: a terminal closing, or a supervisor that hangs up, stops podgate the same orderly way (Node's default would kill it mid-request).
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, stop);
  });
}

/** Every address, IPv6 and IPv4 alike (an IPv6 socket also takes IPv4 on Linux), unless --host says otherwise. */
const ANY_ADDRESS = '::';

/**
 * Listens on `host`, or on every IPv4 address where the default finds no IPv6 (a kernel or
 * pod without it); returns the host it listens on. A port in use is one line naming the flag
 * that chooses another.
 */
async function listenOn(app: { listen: (options: { port: number; host: string }) => Promise<unknown> }, port: number, host: string, flag: string): Promise<string> {
  try {
    await app.listen({ port, host });
    return host;
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : '';
    if (host === ANY_ADDRESS && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) return listenOn(app, port, '0.0.0.0', flag);
    if (code === 'EADDRINUSE') throw new Error(`port ${port} on ${host} is already in use (another podgate, or one still stopping); choose another with ${flag} <n>`, { cause: error });
    throw error;
  }
}

function listeningPort(server: TlsServer, fallback: number): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : fallback;
}
