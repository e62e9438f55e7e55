import { Router, type Response } from 'express';
import type { EnvironmentConfig } from '../../config/schema.js';
import { environmentView, type EnvironmentView } from '../../status/environment-view.js';
import { jobView, type JobRecord } from '../../status/job-record.js';
import type { AppDeps } from '../deps.js';
import { fromRedis, sendError } from '../errors.js';
import { jobStatusUrl, publicBase } from '../status-url.js';

export const ENVIRONMENT_JOBS = 20;

/** GET /environments, GET /environments/:name, POST /environments/:name/sync. */
export function environmentRoutes(deps: AppDeps): Router {
  const byName = new Map(deps.config.environments.map((environment) => [environment.name, environment]));
  const router = Router();

  const view = async (environment: EnvironmentConfig, jobs: JobRecord[]): Promise<EnvironmentView> =>
    environmentView(environment, await deps.store.environmentStatus(environment.name), jobs[0]);

  const find = (name: string, res: Response): EnvironmentConfig | undefined => {
    const environment = byName.get(name);
    if (!environment) sendError(res, 404, `environment "${name}" not found`);
    return environment;
  };

  router.get('/environments', async (_req, res) => {
    const environments = await fromRedis(
      Promise.all(
        deps.config.environments.map(async (environment) =>
          view(environment, await deps.store.list({ environment: environment.name, limit: 1 })),
        ),
      ),
    );
    res.json({ environments });
  });

  router.get('/environments/:name', async (req, res) => {
    const environment = find(req.params.name, res);
    if (!environment) return;
    const body = await fromRedis(
      (async () => {
        const jobs = await deps.store.list({ environment: environment.name, limit: ENVIRONMENT_JOBS });
        return { ...(await view(environment, jobs)), jobs: jobs.map(jobView) };
      })(),
    );
    res.json(body);
  });

  router.post('/environments/:name/sync', async (req, res) => {
    const environment = find(req.params.name, res);
    if (!environment) return;
    const base = publicBase(deps.config.server.publicUrl, req);
    // Only a configured base goes on the record (and the commit status): a Host header is the caller's to choose.
    const recordedBase = deps.config.server.publicUrl ? base : undefined;
    const job = await deps.producer.enqueue(environment.name, { kind: 'manual' }, undefined, recordedBase);
    deps.logger.info({ jobId: job.id, environment: environment.name }, 'manual sync queued');
    res
      .status(202)
      .json({ jobs: [{ id: job.id, environment: job.environment, statusUrl: jobStatusUrl(base, job.id) }] });
  });
  return router;
}
