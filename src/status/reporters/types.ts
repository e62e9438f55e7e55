import type { EnvironmentConfig } from '../../config/schema.js';

/**
 * What pushgate says about a commit. `superseded` means the environment moved on to a newer
 * commit before this one was applied: nothing failed, so no provider shows it as a failure.
 * `canceled`: applied, but its health wait ended for a newer commit; whether it worked is not
 * known (as Flux, which counts a canceled health check as failed, a provider shows it as not
 * good).
 */
export type DeployStatusState = 'pending' | 'success' | 'failure' | 'superseded' | 'canceled';

export interface CommitStatusUpdate {
  environment: EnvironmentConfig;
  sha: string;
  state: DeployStatusState;
  /** Short, one line; providers cut it at 140 (GitHub) / 255 (GitLab) characters. */
  description: string;
  jobId: string;
  /** The status URL the job's creating answer named; else the reporter builds one from the config. */
  statusUrl?: string;
  /** A re-sync of the live commit: posted only when the commit's state changes (see StatusOffer). */
  quiet?: boolean;
}

/** One status as it is sent: everything the provider needs, read back from the outbox. */
export interface StatusDelivery {
  /** `owner/name` (GitHub) or the project path (GitLab). */
  repo: string;
  /** The environment's branch. */
  ref: string;
  sha: string;
  state: DeployStatusState;
  context: string;
  description: string;
  targetUrl: string;
}

/**
 * Sends one status to one provider, once: throws ProviderRequestError for an answer other
 * than 2xx (the reporter decides whether and when to try again), anything else for no answer.
 */
export interface CommitStatusSender {
  send(delivery: StatusDelivery, signal: AbortSignal): Promise<void>;
  /** Loads what `send` needs when that is done on first use; its time is not the provider's. */
  ready?(): Promise<void>;
}

/** Statuses are context `pushgate/<environment>`, one per environment on the same commit. */
export function statusContext(environment: string): string {
  return `pushgate/${environment}`;
}

/** At most `max` characters, counted as the providers count them: never half a surrogate pair. */
export function clipDescription(description: string, max: number): string {
  if (description.length <= max) return description;
  return Array.from(description).slice(0, max).join('');
}
