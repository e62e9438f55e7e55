import { KubeApiError } from '../kube/api-error.js';
import { DeployError } from '../kube/types.js';
import { PushgateError } from '../lib/errors.js';
import type { ResourceResult } from '../status/job-record.js';

/** Errors about what git holds: retrying the same commit gives the same answer. */
const PERMANENT_CODES = new Set(['manifest_invalid', 'policy_violation', 'config_invalid', 'usage']);

/**
 * What the API server refuses as malformed, invalid or too large: the same request, and a
 * retried deploy of the same commit makes the same one, gets the same answer.
 */
const REFUSED_AS_SENT = new Set([400, 413, 422]);

/**
 * Bad manifests, policy violations, what the engine marks permanent and a request the API
 * server refuses as sent fail the job at once; everything else (network, 5xx, 429,
 * conflicts, a git fetch timeout, a lost lock) retries.
 */
export function isPermanentFailure(error: unknown): boolean {
  if (error instanceof KubeApiError) return error.status !== undefined && REFUSED_AS_SENT.has(error.status);
  if (!(error instanceof PushgateError)) return false;
  return error.permanent || PERMANENT_CODES.has(error.code);
}

/**
 * How many attempts a job gets in all when `error` is a refusal of the worker's credentials
 * (401, which the transport meets only after refreshing them once) or of their permissions
 * (403): a token mid-rotation may clear in a second or two, but not a wrong one or a missing
 * RoleBinding. Failed within seconds, the job says so on the commit and to `sync --wait`,
 * rather than after the minutes of a push's retries; the fix is followed by a `pushgate sync`.
 */
export const REFUSED_ATTEMPTS = 3;

/** The attempts the job gets in all, given the failure of this one. */
export function attemptsAllowed(error: unknown, configured: number): number {
  const refused =
    (error instanceof KubeApiError && (error.status === 401 || error.status === 403)) ||
    // A 401 on an object's dry-run or apply (failuresError).
    (error instanceof PushgateError && error.code === 'unauthorized');
  return refused ? Math.min(configured, REFUSED_ATTEMPTS) : configured;
}

/** What the engine did before it failed, for the job record. */
export function resourcesOf(error: unknown): ResourceResult[] | undefined {
  return error instanceof DeployError ? error.resources : undefined;
}
