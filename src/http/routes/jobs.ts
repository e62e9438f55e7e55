import { Router } from 'express';
import { z } from 'zod';
import { jobStateSchema, jobView } from '../../status/job-record.js';
import type { AppDeps } from '../deps.js';
import { fromRedis, sendError } from '../errors.js';
import { limitParam, parseParams } from '../query.js';

export const DEFAULT_JOB_LIMIT = 20;
export const MAX_JOB_LIMIT = 500;

/** GET /jobs/:id and GET /jobs?environment=E&state=S&limit=N (newest first). */
export function jobRoutes(deps: AppDeps): Router {
  const environments = new Set(deps.config.environments.map((environment) => environment.name));
  const listQuery = z
    .object({
      environment: z
        .string()
        .refine(
          (name) => environments.has(name),
          (name) => ({ message: `unknown environment "${name}"` }),
        )
        .optional(),
      state: z
        .string()
        .refine((state) => jobStateSchema.safeParse(state).success, {
          message: `must be one of ${jobStateSchema.options.join(', ')}`,
        })
        .transform((state) => jobStateSchema.parse(state))
        .optional(),
      limit: limitParam(MAX_JOB_LIMIT, DEFAULT_JOB_LIMIT),
    })
    // A misspelt filter (`env=`, `status=`, `environment[]=`) must not answer every job as if it held.
    .strict();
  const router = Router();

  router.get('/jobs', async (req, res) => {
    const query = parseParams(listQuery, req.query);
    const jobs = await fromRedis(deps.store.list(query));
    res.json({ jobs: jobs.map(jobView) });
  });

  router.get('/jobs/:id', async (req, res) => {
    const job = await fromRedis(deps.store.get(req.params.id));
    if (!job) {
      sendError(res, 404, `job "${req.params.id}" not found`);
      return;
    }
    // One job only: a list would cost a Redis round trip per job.
    const sha = job.sha ?? job.trigger.sha;
    const commitStatus = sha ? await fromRedis(deps.store.commitStatus(job.environment, sha)) : null;
    res.json({ ...jobView(job), ...(commitStatus ? { commitStatus } : {}) });
  });
  return router;
}
