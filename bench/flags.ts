import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** The V8 flags the Deployment runs podgate with: the bench measures podgate as deployed (and the baseline alike). */
export function deployedNodeFlags(): string[] {
  const path = fileURLToPath(new URL('../manifests/base/deployment.yaml', import.meta.url));
  const deployment = parse(readFileSync(path, 'utf8')) as { spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } } };
  const value = deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
  return value.split(/\s+/).filter(Boolean);
}
