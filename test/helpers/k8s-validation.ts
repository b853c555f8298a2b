/**
 * The checks the API server's pod validation makes on required node affinity
 * (pkg/apis/core/validation: ValidateNodeSelector, ValidateNodeSelectorRequirement,
 * ValidateNodeFieldSelectorRequirement), so a steered pod can be shown to pass them.
 */
export function nodeAffinityErrors(podSpec: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const affinity = podSpec['affinity'] as Record<string, unknown> | undefined;
  const nodeAffinity = affinity?.['nodeAffinity'] as Record<string, unknown> | undefined;
  const required = nodeAffinity?.['requiredDuringSchedulingIgnoredDuringExecution'] as Record<string, unknown> | undefined;
  if (required === undefined) return errors;
  const terms = required['nodeSelectorTerms'];
  if (!Array.isArray(terms) || terms.length === 0) return ['nodeSelectorTerms: must have at least one node selector term'];
  terms.forEach((term: Record<string, unknown>, i) => {
    for (const expression of (term['matchExpressions'] ?? []) as Record<string, unknown>[]) {
      const values = (expression['values'] ?? []) as unknown[];
      const where = `nodeSelectorTerms[${i}].matchExpressions[${String(expression['key'])}]`;
      switch (expression['operator']) {
        case 'In':
        case 'NotIn':
          if (values.length === 0) errors.push(`${where}: values must be non-empty for In/NotIn`);
          break;
        case 'Exists':
        case 'DoesNotExist':
          if (values.length > 0) errors.push(`${where}: values must be empty for Exists/DoesNotExist`);
          break;
        case 'Gt':
        case 'Lt':
          if (values.length !== 1 || !/^-?\d+$/.test(String(values[0]))) errors.push(`${where}: Gt/Lt takes one integer value`);
          break;
        default:
          errors.push(`${where}: not a valid operator ${String(expression['operator'])}`);
      }
      if (typeof expression['key'] !== 'string' || !/^([a-z0-9.-]+\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(expression['key'])) errors.push(`${where}: invalid label key`);
    }
    for (const field of (term['matchFields'] ?? []) as Record<string, unknown>[]) {
      const values = (field['values'] ?? []) as unknown[];
      const where = `nodeSelectorTerms[${i}].matchFields[${String(field['key'])}]`;
      if (field['key'] !== 'metadata.name') errors.push(`${where}: not a supported field selector`);
      if (field['operator'] !== 'In' && field['operator'] !== 'NotIn') errors.push(`${where}: not a valid selector operator`);
      if (values.length !== 1) errors.push(`${where}: must have one element`);
    }
  });
  return errors;
}
