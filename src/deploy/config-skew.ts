import type { EnvironmentConfig } from '../config/schema.js';
import type { EnvironmentTarget } from '../queue/job-data.js';

/**
 * While a configuration change rolls out, receivers and workers run different configurations
 * side by side. A worker that lacks the environment a job is for, or has another branch,
 * path, cluster or namespace for it than the receiver that queued the push, hands the job back
 * for this long, so a worker on the receiver's configuration runs it; only then does it fail
 * the job (environment unknown) or deploy with its own configuration (the deploy is of the
 * branch head it is configured for, so that is safe).
 */
export const CONFIG_SKEW_GRACE_MS = 5 * 60_000;
/** A job handed back for configuration skew is offered again after this long… */
export const CONFIG_SKEW_RECHECK_MS = 5_000;
/**
 * …or this long, when a running worker of the newest configuration is there to take it: any
 * free worker takes a job that falls due, so the old one may take it again a few times.
 */
export const NEWER_WORKER_RECHECK_MS = 1_000;

/** What of an environment's configuration decides where a push goes: carried by webhook jobs. */
export function environmentTarget(environment: EnvironmentConfig): EnvironmentTarget {
  return {
    branch: environment.branch,
    path: environment.path,
    cluster: environment.cluster,
    namespace: environment.namespace,
  };
}

/** The fields in which two configurations of an environment send it to different places. */
export function targetDifferences(
  before: EnvironmentTarget,
  after: EnvironmentTarget,
): (keyof EnvironmentTarget)[] {
  return (Object.keys(after) as (keyof EnvironmentTarget)[]).filter(
    (field) => before[field] !== after[field],
  );
}

/** Where an environment went (`namespace "a" → "b"`), for messages and logs. */
export function describeTargetChange(before: EnvironmentTarget, after: EnvironmentTarget): string {
  return targetDifferences(before, after)
    .map((field) => `${field} ${JSON.stringify(before[field])} → ${JSON.stringify(after[field])}`)
    .join('; ');
}

/**
 * How this worker's configuration of the environment differs from the one the job was
 * queued with (`undefined`: it does not, or the job carries none: manual syncs and re-syncs
 * deploy the environment as the worker has it).
 */
export function configSkew(
  queuedWith: EnvironmentTarget | undefined,
  environment: EnvironmentConfig,
): string | undefined {
  if (!queuedWith) return undefined;
  const here = environmentTarget(environment);
  const differences = targetDifferences(queuedWith, here).map(
    (field) =>
      `${field} ${JSON.stringify(queuedWith[field])} where the push was queued, ${JSON.stringify(here[field])} here`,
  );
  return differences.length > 0 ? differences.join('; ') : undefined;
}
