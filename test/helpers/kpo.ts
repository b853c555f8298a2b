import { createHash } from 'node:crypto';
import { makePod } from './builders.ts';

/**
 * KubernetesPodOperator pods as KPO builds them (apache-airflow-providers-cncf-kubernetes,
 * operators/pod.py: _get_ti_pod_labels, build_pod_request_obj), with the
 * defaults the API server has applied by the time a webhook sees them.
 */

/** pod_generator.make_safe_label_value: strip what a label value may not hold; if anything changed or it is too long, append an md5 hash. */
export function makeSafeLabelValue(value: string): string {
  let safe = value.replace(/^[^a-z0-9A-Z]*|[^a-zA-Z0-9_\-.]|[^a-z0-9A-Z]*$/g, '');
  if (safe.length > 63 || safe !== value) {
    const hash = createHash('md5').update(value).digest('hex').slice(0, 9);
    safe = `${safe.slice(0, 63 - hash.length - 1)}-${hash}`;
  }
  return safe;
}

export interface KpoTask {
  dagId?: string;
  taskId?: string;
  runId?: string;
  tryNumber?: number;
  mapIndex?: number;
  /** The operator's own labels= (an Airflow cluster policy may set the environment label here). */
  operatorLabels?: Record<string, string>;
  /** Pod name before KPO's random suffix. */
  name?: string;
  suffix?: string;
  namespace?: string;
}

export function kpoLabels(task: KpoTask = {}): Record<string, string> {
  return {
    ...task.operatorLabels,
    airflow_version: '2.6.3',
    airflow_kpo_in_cluster: 'True',
    dag_id: makeSafeLabelValue(task.dagId ?? 'foo-bar-dag-id'),
    task_id: makeSafeLabelValue(task.taskId ?? 'foo-bar-task-id'),
    run_id: makeSafeLabelValue(task.runId ?? 'scheduled__2023-03-08T01:30:00+00:00'),
    kubernetes_pod_operator: 'True',
    ...(task.mapIndex !== undefined && task.mapIndex >= 0 ? { map_index: String(task.mapIndex) } : {}),
    try_number: String(task.tryNumber ?? 1),
  };
}

export function makeKpoPod(task: KpoTask = {}): Record<string, unknown> {
  const pod = makePod({
    name: `${task.name ?? 'export-action-log'}-${task.suffix ?? '4devg7t1'}`,
    namespace: task.namespace ?? 'airflow',
    labels: kpoLabels(task),
    containers: [{ name: 'base' }],
    spec: { affinity: {}, tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }] },
  });
  return pod;
}

/** Alpha's Airflow runs in the cluster: its workers create KPO pods as a service account. */
export const ALPHA = {
  username: 'system:serviceaccount:airflow-alpha:airflow-worker',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:airflow-alpha', 'system:authenticated'],
};

/** Production is MWAA on EKS: an IAM role, mapped by aws-auth, with the ARN in userInfo.extra. */
export const PRODUCTION = {
  username: 'mwaa-service',
  groups: ['mwaa-role', 'system:authenticated'],
  extra: {
    arn: ['arn:aws:sts::111122223333:assumed-role/mwaa-prod-execution/AmazonMWAA-airflow'],
    canonicalArn: ['arn:aws:iam::111122223333:role/mwaa-prod-execution'],
    sessionName: ['AmazonMWAA-airflow'],
  },
};

export const AIRFLOW_SECTION = {
  clusterId: 'gke-shared-1',
  environments: [
    { name: 'production', extra: { canonicalArn: ['arn:aws:iam::111122223333:role/mwaa-prod-*'] } },
    { name: 'alpha', serviceAccountNamespaces: ['airflow-alpha'] },
  ],
  exempt: { groups: ['system:masters'] },
};
