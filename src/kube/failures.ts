import { errorMessage } from '../lib/errors.js';
import type { PreparedObject } from '../manifests/prepare.js';
import { describeSource, formatProblems } from '../manifests/problems.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ResourceResult } from '../status/job-record.js';
import { DeployError } from './types.js';
import { KubeApiError } from './http.js';
import { redactSecretValues } from './secret-redaction.js';

/** One object the API server (or the network) refused, with where it came from. */
export interface ObjectFailure {
  object: PreparedObject;
  message: string;
  permanent: boolean;
  /** No HTTP answer at all: the network or the server is down. */
  network: boolean;
}

export function objectFailure(object: PreparedObject, verb: string, error: unknown): ObjectFailure {
  const permanent = error instanceof KubeApiError ? !error.transient : true;
  const network = error instanceof KubeApiError && error.status === undefined;
  const status = error instanceof KubeApiError && error.status !== undefined ? ` (HTTP ${error.status})` : '';
  return {
    object,
    message: `${describeRef(object.ref)}: ${verb}${status}: ${redactSecretValues(errorMessage(error), object.object)}`,
    permanent,
    network,
  };
}

/** The job fails as a whole: permanent only when retrying could not help any of the objects. */
export function failuresError(
  failures: readonly ObjectFailure[],
  headline: string,
  resources: ResourceResult[],
): DeployError {
  const permanent = failures.every((failure) => failure.permanent);
  const code = failures.every((failure) => failure.network) ? 'transient' : 'apply_rejected';
  const lines = formatProblems(
    failures.map((failure) => ({ source: failure.object.source, message: failure.message })),
    'objects failed',
  );
  return new DeployError(code, `${headline}: ${failures.length === 1 ? lines : `\n${lines}`}`, {
    permanent,
    resources,
  });
}

export function where(object: PreparedObject): string {
  return `${describeRef(object.ref)} (${describeSource(object.source)})`;
}
