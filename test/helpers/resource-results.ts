import type { ResourceResult } from '../../src/status/job-record.js';

/** A job record's entry for ConfigMap apps/`name`. */
export function configMapResult(
  name: string,
  action: ResourceResult['action'],
  message?: string,
): ResourceResult {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    namespace: 'apps',
    name,
    action,
    ...(message ? { message } : {}),
  };
}
