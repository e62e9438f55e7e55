import { DeployError } from '../kube/types.js';
import { PushgateError } from '../lib/errors.js';
import type { ResourceResult } from '../status/job-record.js';

/** Errors about what git holds: retrying the same commit gives the same answer. */
const PERMANENT_CODES = new Set(['manifest_invalid', 'policy_violation', 'config_invalid', 'usage']);

/**
 * Bad manifests, policy violations and what the engine marks permanent fail the job at once;
 * everything else (network, 5xx, 429, conflicts, a git fetch timeout, a lost lock) retries.
 */
export function isPermanentFailure(error: unknown): boolean {
  if (!(error instanceof PushgateError)) return false;
  return error.permanent || PERMANENT_CODES.has(error.code);
}

/** What the engine did before it failed, for the job record. */
export function resourcesOf(error: unknown): ResourceResult[] | undefined {
  return error instanceof DeployError ? error.resources : undefined;
}
