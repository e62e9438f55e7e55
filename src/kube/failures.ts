import { errorMessage } from '../lib/errors.js';
import type { PreparedObject } from '../manifests/prepare.js';
import { describeSource, formatProblems } from '../manifests/problems.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ResourceResult } from '../status/job-record.js';
import { DeployError } from './types.js';
import { KubeApiError } from './api-error.js';
import { BeingDeletedError } from './being-deleted.js';
import { redactSecretValues } from './secret-redaction.js';

/** One object the API server (or the network) refused, with where it came from. */
export interface ObjectFailure {
  object: PreparedObject;
  message: string;
  permanent: boolean;
  /** No HTTP answer at all: the network or the server is down. */
  network: boolean;
  /** The API server refused the credentials (401): the cluster's kubeconfig, not the object. */
  unauthorized: boolean;
}

/** How a job's error begins when the API server refused the credentials: the commit status shows this. */
export const CREDENTIALS_REFUSED =
  "the API server refused the kubeconfig's credentials (401 Unauthorized), not the manifests";

/**
 * Where the API server quotes the offending value: as JSON (`{"labels":…}`), or a Go literal
 * (`core.PodTemplateSpec{…}`) in older versions.
 */
const QUOTED_VALUE = /Invalid value: (?:[a-z][a-z0-9]*\.[A-Z][A-Za-z0-9]*)?[{[]/g;
/** Quoted values up to this long stay: a short one can say what was wrong. */
const MAX_QUOTED_CHARS = 120;

/** The index just past the bracket closing the one at `open - 1` (strings skipped). */
function closingIndex(message: string, open: number): number {
  let depth = 1;
  let index = open;
  let inString = false;
  while (index < message.length && depth > 0) {
    const char = message[index];
    if (inString) {
      if (char === '\\') index += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth += 1;
    else if (char === '}' || char === ']') depth -= 1;
    index += 1;
  }
  return index;
}

/**
 * `message` with long quoted values cut to `{…}`: for an immutable Job template the API server
 * quotes the whole pod template, some 2 KB on one line, which would bury the reason (`field is
 * immutable`) in the job's error and fill the commit status.
 */
export function shortenQuotedValues(message: string): string {
  let result = '';
  let copiedUpTo = 0;
  for (const match of message.matchAll(QUOTED_VALUE)) {
    const open = match.index + match[0].length;
    if (match.index < copiedUpTo) continue;
    const close = closingIndex(message, open);
    if (close - open <= MAX_QUOTED_CHARS) continue;
    const closer = match[0].endsWith('[') ? ']' : '}';
    result += `${message.slice(copiedUpTo, match.index)}${match[0]}…${closer}`;
    copiedUpTo = close;
  }
  return result + message.slice(copiedUpTo);
}

export function objectFailure(object: PreparedObject, verb: string, error: unknown): ObjectFailure {
  const unauthorized = error instanceof KubeApiError && error.status === 401;
  // A 401 is a token mid-rotation or a wrong one: retried a few times (attemptsAllowed).
  const permanent =
    error instanceof KubeApiError
      ? !error.transient && !unauthorized
      : error instanceof BeingDeletedError
        ? !error.transient
        : true;
  const network = error instanceof KubeApiError && error.status === undefined;
  const status = error instanceof KubeApiError && error.status !== undefined ? ` (HTTP ${error.status})` : '';
  return {
    object,
    message: `${describeRef(object.ref)}: ${verb}${status}: ${shortenQuotedValues(redactSecretValues(errorMessage(error), object.object))}`,
    permanent,
    network,
    unauthorized,
  };
}

/** The job fails as a whole: permanent only when retrying could not help any of the objects. */
export function failuresError(
  failures: readonly ObjectFailure[],
  headline: string,
  resources: ResourceResult[],
): DeployError {
  const lines = formatProblems(
    failures.map((failure) => ({ source: failure.object.source, message: failure.message })),
    'objects failed',
  );
  const listed = failures.length === 1 ? lines : `\n${lines}`;
  // Every request carries the same credentials: refused for one object, they are the
  // problem, whatever else the others met.
  if (failures.some((failure) => failure.unauthorized))
    return new DeployError('unauthorized', `${CREDENTIALS_REFUSED} (${headline}): ${listed}`, {
      permanent: false,
      resources,
    });
  const permanent = failures.every((failure) => failure.permanent);
  const code = failures.every((failure) => failure.network) ? 'transient' : 'apply_rejected';
  return new DeployError(code, `${headline}: ${listed}`, { permanent, resources });
}

export function where(object: PreparedObject): string {
  return `${describeRef(object.ref)} (${describeSource(object.source)})`;
}
