import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { arrayAt, stringAt } from '../lib/json.ts';
import { generateCertificates, validForDays, type CertificateSet } from '../certs/generate.ts';
import { CERT_FILES, writeCertificateSet } from '../certs/files.ts';
import { UsageError, type CommandIO } from './io.ts';

const DEFAULT_OUT = fileURLToPath(new URL('../../manifests/overlays/self-signed', import.meta.url));
const DEFAULT_WEBHOOKS = fileURLToPath(new URL('../../manifests/base/webhooks.yaml', import.meta.url));

export const CERTS_HELP = `Usage: podgate certs [options]

Makes a private CA and a serving certificate for the podgate Service, for
clusters without cert-manager, and writes them where the self-signed overlay
picks them up: <out>/tls/ (ca.crt, ca.key, tls.crt, tls.key) and the two
patches that set the webhook configurations' caBundle.

Run it again to renew: a CA that is still valid for a year is kept (the
caBundle does not change), only the serving certificate is replaced;
--new-ca replaces both.

Options:
  --service <name>     Service name (default podgate)
  --namespace <ns>     its namespace (default podgate)
  --out <dir>          overlay directory (default manifests/overlays/self-signed)
  --webhooks <file>    the webhook configurations to patch (default manifests/base/webhooks.yaml)
  --days <n>           validity of the serving certificate (default 365)
  --new-ca             replace the CA too

Example:
  podgate certs && kubectl apply -k manifests/overlays/self-signed
`;

/** The names the API server checks a webhook's certificate against: <svc>, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** The webhook names of each configuration in the webhooks file, so the caBundle patches name every one of them. */
export function webhookNames(text: string): { kind: string; name: string; webhooks: string[] }[] {
  return parseAllDocuments(text).flatMap((document) => {
    const object: unknown = document.toJS();
    const kind = stringAt(object, 'kind');
    const name = stringAt(object, 'metadata', 'name');
    if (kind === undefined || name === undefined || !kind.endsWith('WebhookConfiguration')) return [];
    return [{ kind, name, webhooks: arrayAt(object, 'webhooks').flatMap((hook) => stringAt(hook, 'name') ?? []) }];
  });
}

function caBundlePatch(kind: string, name: string, webhooks: readonly string[], caBundle: string): string {
  const entries = webhooks.map((hook) => `  - name: ${hook}\n    clientConfig:\n      caBundle: ${caBundle}\n`).join('');
  return `# Written by podgate certs: the CA of podgate's serving certificate.\napiVersion: admissionregistration.k8s.io/v1\nkind: ${kind}\nmetadata:\n  name: ${name}\nwebhooks:\n${entries}`;
}

async function existingCa(dir: string): Promise<Pick<CertificateSet, 'caCert' | 'caKey'> | undefined> {
  try {
    return { caCert: await readFile(join(dir, CERT_FILES.caCert), 'utf8'), caKey: await readFile(join(dir, CERT_FILES.caKey), 'utf8') };
  } catch {
    return undefined;
  }
}

export async function certs(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h' },
      service: { type: 'string' },
      namespace: { type: 'string' },
      out: { type: 'string' },
      webhooks: { type: 'string' },
      days: { type: 'string' },
      'new-ca': { type: 'boolean' },
    },
  });
  if (values.help) {
    io.out(CERTS_HELP);
    return 0;
  }
  const days = Number(values.days ?? '365');
  if (!Number.isInteger(days) || days < 1) throw new UsageError(`--days must be a whole number of days, got "${values.days ?? ''}"`, CERTS_HELP);
  const hosts = serviceDnsNames(values.service ?? 'podgate', values.namespace ?? 'podgate');
  const out = values.out ?? DEFAULT_OUT;
  const tlsDir = join(out, 'tls');
  const configurations = webhookNames(await readFile(values.webhooks ?? DEFAULT_WEBHOOKS, 'utf8'));
  if (configurations.length === 0) throw new UsageError(`no webhook configurations in ${values.webhooks ?? DEFAULT_WEBHOOKS}`, CERTS_HELP);

  const previous = values['new-ca'] ? undefined : await existingCa(tlsDir);
  const keepCa = previous !== undefined && validForDays(previous.caCert, 365);
  const set = await generateCertificates({ hosts, days, ...(keepCa ? { ca: previous } : {}) });
  await writeCertificateSet(tlsDir, set);
  const caBundle = Buffer.from(set.caCert).toString('base64');
  await mkdir(out, { recursive: true });
  for (const { kind, name, webhooks } of configurations) {
    const file = join(out, kind === 'MutatingWebhookConfiguration' ? 'mutating-webhook-ca.yaml' : 'validating-webhook-ca.yaml');
    await writeFile(file, caBundlePatch(kind, name, webhooks, caBundle));
    io.out(`wrote ${file} (caBundle of ${kind} ${name}: ${webhooks.join(', ')})\n`);
  }
  io.out(`wrote ${tlsDir}/{ca.crt,ca.key,tls.crt,tls.key}: ${keepCa ? 'kept the existing CA, ' : 'a new CA, '}serving certificate for ${hosts.join(', ')}, valid ${days} days\n`);
  io.out(`caBundle: ${caBundle}\n`);
  return 0;
}
