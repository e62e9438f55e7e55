import { Router } from 'express';
import { jobStateSchema } from '../../status/job-record.js';
import type { AppDeps } from '../deps.js';

/** How many of the newest job records the jobs-by-state gauge counts: bounded, so a scrape stays cheap. */
export const JOBS_BY_STATE_WINDOW = 1_000;
const QUEUE_STATES = ['waiting', 'delayed', 'active', 'prioritized'] as const;

async function refreshGauges(deps: AppDeps): Promise<void> {
  const { environments } = deps.config;
  const [recent, counts, suspensions, lastFinished] = await Promise.all([
    deps.store.countStates(JOBS_BY_STATE_WINDOW),
    deps.queue.getJobCounts(...QUEUE_STATES),
    Promise.all(environments.map((environment) => deps.store.suspensions.get(environment.name))),
    Promise.all(environments.map((environment) => deps.store.lastOutcome(environment.name))),
  ]);
  environments.forEach(({ name }, index) => {
    deps.metrics.environmentSuspended.set({ environment: name }, suspensions[index] ? 1 : 0);
    deps.metrics.environmentFailing.set({ environment: name }, lastFinished[index] === 'failed' ? 1 : 0);
  });
  for (const state of jobStateSchema.options) deps.metrics.jobsByState.set({ state }, recent.get(state) ?? 0);
  for (const state of QUEUE_STATES) deps.metrics.queueDepth.set({ state }, counts[state] ?? 0);
}

export function metricsRoutes(deps: AppDeps): Router {
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    // A scrape while Redis is down still answers, with the gauges as last seen.
    await refreshGauges(deps).catch((error: unknown) =>
      deps.logger.warn({ err: error }, 'metrics: Redis gauges not refreshed'),
    );
    res.set('Content-Type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}
