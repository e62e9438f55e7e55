import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Every metric pushgate exports, created on one registry so receiver and worker can share it. */
export interface Metrics {
  registry: Registry;
  webhooks: Counter<'provider' | 'outcome'>;
  jobsFinished: Counter<'environment' | 'state'>;
  jobsByState: Gauge<'state'>;
  deployDuration: Histogram<'environment' | 'state'>;
  jobLatency: Histogram<'environment' | 'state'>;
  queueDepth: Gauge<'state'>;
  webhookBodyBytes: Gauge;
  commitStatuses: Counter<'provider' | 'outcome'>;
  environmentSuspended: Gauge<'environment'>;
  environmentFailing: Gauge<'environment'>;
}

/**
 * The outcomes `pushgate_commit_statuses_total` counts. `unauthorized`: the provider refused
 * the token; tried again later like `retried`, but only a person can fix it.
 */
export const COMMIT_STATUS_OUTCOMES = ['delivered', 'skipped', 'retried', 'unauthorized', 'failed'] as const;
export type CommitStatusOutcome = (typeof COMMIT_STATUS_OUTCOMES)[number];

/** The outcomes `pushgate_webhooks_total` counts, one per answer the receiver gives. */
export const WEBHOOK_OUTCOMES = [
  'queued',
  'duplicate',
  'ignored',
  'unauthorized',
  'invalid',
  'too_large',
  'busy',
  'unavailable',
  'error',
] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

const FINAL_JOB_STATES = ['succeeded', 'failed', 'superseded'] as const;

/**
 * Starts the series alerts watch at 0. A counter series appears only at its first
 * increment, and `increase()` cannot see the step from absent to 1: the first failed deploy
 * after a worker restarts (every rollout) would never alert.
 */
export function initialiseSeries(
  metrics: Metrics,
  scope: {
    webhooks?: boolean;
    environments?: readonly string[];
    /** Providers this process reports commit statuses to (it holds their token). */
    statusProviders?: readonly string[];
  },
): void {
  for (const provider of scope.statusProviders ?? []) {
    for (const outcome of COMMIT_STATUS_OUTCOMES) metrics.commitStatuses.inc({ provider, outcome }, 0);
  }
  if (scope.webhooks) {
    for (const provider of ['github', 'gitlab'])
      for (const outcome of WEBHOOK_OUTCOMES) metrics.webhooks.inc({ provider, outcome }, 0);
  }
  for (const environment of scope.environments ?? []) {
    for (const state of FINAL_JOB_STATES) metrics.jobsFinished.inc({ environment, state }, 0);
  }
}

/** The providers a process holding these tokens reports commit statuses to. */
export function statusProviders(tokens: {
  githubToken?: string | undefined;
  gitlabToken?: string | undefined;
  githubTokenFile?: string | undefined;
  gitlabTokenFile?: string | undefined;
}): string[] {
  return [
    ...(tokens.githubToken || tokens.githubTokenFile ? ['github'] : []),
    ...(tokens.gitlabToken || tokens.gitlabTokenFile ? ['gitlab'] : []),
  ];
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  return {
    registry,
    webhooks: new Counter({
      name: 'pushgate_webhooks_total',
      help: 'Webhook deliveries by provider and outcome (queued, duplicate, ignored, unauthorized, invalid, too_large, busy, unavailable, error)',
      labelNames: ['provider', 'outcome'],
      registers: [registry],
    }),
    jobsFinished: new Counter({
      name: 'pushgate_jobs_finished_total',
      help: 'Deploy jobs finished by this process, by environment and final state',
      labelNames: ['environment', 'state'],
      registers: [registry],
    }),
    jobsByState: new Gauge({
      name: 'pushgate_jobs',
      help: 'Deploy jobs in the kept history by state',
      labelNames: ['state'],
      registers: [registry],
    }),
    deployDuration: new Histogram({
      name: 'pushgate_deploy_duration_seconds',
      help: 'Time from a worker taking a deploy job to its end',
      labelNames: ['environment', 'state'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    jobLatency: new Histogram({
      name: 'pushgate_job_latency_seconds',
      help: 'Time from a job being received (webhook, sync request, reconcile tick) to its end, queue wait and retries included; for succeeded, push to live',
      labelNames: ['environment', 'state'],
      buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'pushgate_queue_depth',
      help: 'Deploy jobs in the queue by BullMQ state (waiting, prioritized, delayed, active)',
      labelNames: ['state'],
      registers: [registry],
    }),
    webhookBodyBytes: new Gauge({
      name: 'pushgate_webhook_body_bytes_in_flight',
      help: 'Bytes of webhook bodies the receiver holds now (read or being read); past 32 MiB (or server.bodyLimit) new bodies get 503',
      registers: [registry],
    }),
    environmentSuspended: new Gauge({
      name: 'pushgate_environment_suspended',
      help: 'Whether deploys of the environment are held by pushgate suspend (1) or not (0)',
      labelNames: ['environment'],
      registers: [registry],
    }),
    environmentFailing: new Gauge({
      name: 'pushgate_environment_failing',
      help: 'Whether the last deploy of the environment that ended failed (1), until one succeeds, or not (0); superseded jobs aside',
      labelNames: ['environment'],
      registers: [registry],
    }),
    commitStatuses: new Counter({
      name: 'pushgate_commit_statuses_total',
      help: 'Commit status delivery attempts by this process, by provider and outcome (delivered; skipped: the commit shows that state already; retried: failed, tried again later; unauthorized: the provider refused the token, tried again later; failed: given up, the commit does not show it)',
      labelNames: ['provider', 'outcome'],
      registers: [registry],
    }),
  };
}
