import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { EnvironmentConfig } from '../../config/schema.js';
import { environmentView, type EnvironmentView } from '../../status/environment-view.js';
import { jobView, type JobRecord } from '../../status/job-record.js';
import { describeSuspension, suspendReasonProblem } from '../../status/suspensions.js';
import { errorMessage } from '../../lib/errors.js';
import type { AppDeps } from '../deps.js';
import { fromRedis, sendError } from '../errors.js';
import { limitParam, parseParams, quotedNames } from '../query.js';
import { jobStatusUrl, publicBase } from '../status-url.js';

export const ENVIRONMENT_JOBS = 20;
/** As GET /jobs: each job is read whole. */
const MAX_ENVIRONMENT_JOBS = 500;

/** A parameter these routes do not know is refused, not ignored: `?environment=` must not answer every one. */
const noQuery = z.object({}).strict();
const environmentQuery = z.object({ limit: limitParam(MAX_ENVIRONMENT_JOBS, ENVIRONMENT_JOBS) }).strict();

/** Any body, read only to be refused: kept small, a larger one is a 413. */
const ignoredBody = express.raw({ limit: '4kb', type: () => true });

/** Runs a body parser inside a route: its HttpError (400, 413, 415) goes to the error handler. */
function readBody(parser: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    parser(req, res, (error?: unknown) =>
      error ? reject(error instanceof Error ? error : new Error('the body could not be read')) : resolve(),
    ),
  );
}

/**
 * Why the body of a sync or resume cannot be taken: they deploy the branch head and take no
 * body, and `{"ref": "abc"}` must not quietly deploy something else. None, empty or `{}` is fine.
 */
function bodyProblem(route: 'sync' | 'resume', body: unknown): string | undefined {
  if (!Buffer.isBuffer(body)) return undefined;
  const text = body.toString('utf8').trim();
  if (text === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const takesNone = `${route} takes no body: it deploys the branch head`;
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const fields = Object.keys(parsed);
    if (fields.length === 0) return undefined;
    return `unknown field${fields.length > 1 ? 's' : ''} ${quotedNames(fields)}: ${takesNone}`;
  }
  return `${takesNone} (${body.length} bytes sent)`;
}

/** GET /environments, GET /environments/:name, POST /environments/:name/sync, suspend and resume. */
export function environmentRoutes(deps: AppDeps): Router {
  const byName = new Map(deps.config.environments.map((environment) => [environment.name, environment]));
  const router = Router();

  const view = async (environment: EnvironmentConfig, jobs: JobRecord[]): Promise<EnvironmentView> =>
    environmentView(
      environment,
      await deps.store.environmentStatus(environment.name),
      await deps.store.lastJob(environment.name, jobs[0]),
    );

  const find = (name: string, res: Response): EnvironmentConfig | undefined => {
    const environment = byName.get(name);
    if (!environment) sendError(res, 404, `environment "${name}" not found`);
    return environment;
  };

  router.get('/environments', async (req, res) => {
    parseParams(noQuery, req.query);
    const environments = await fromRedis(
      Promise.all(
        deps.config.environments.map(async (environment) =>
          environmentView(
            environment,
            await deps.store.environmentStatus(environment.name),
            await deps.store.lastJob(environment.name),
          ),
        ),
      ),
    );
    res.json({ environments });
  });

  router.get('/environments/:name', async (req, res) => {
    const environment = find(req.params.name, res);
    if (!environment) return;
    const { limit } = parseParams(environmentQuery, req.query);
    const body = await fromRedis(
      (async () => {
        const jobs = await deps.store.list({ environment: environment.name, limit });
        return { ...(await view(environment, jobs)), jobs: jobs.map(jobView) };
      })(),
    );
    res.json(body);
  });

  /**
   * A manual deploy of the branch head, answered as SPEC §5's sync is. A sync joins the
   * environment's sync that is queued and has not started (it deploys the head as it is when
   * it starts): the same job, the same answer. A resume queues its own, which must run at once.
   */
  const queueSync = async (route: 'sync' | 'resume', environment: EnvironmentConfig, req: Request) => {
    const base = publicBase(deps.config.server.publicUrl, req);
    // Only a configured base goes on the record (and the commit status): a Host header is the caller's to choose.
    const recordedBase = deps.config.server.publicUrl ? base : undefined;
    const job = await deps.producer.enqueue(
      environment.name,
      { kind: 'manual' },
      undefined,
      recordedBase,
      undefined,
      { pendingSync: route === 'resume' ? 'lead' : 'join' },
    );
    return {
      answer: { id: job.id, environment: job.environment, statusUrl: jobStatusUrl(base, job.id) },
      created: job.created,
    };
  };

  /** The environment a sync or resume names, once its query and body are known to be empty. */
  const deployRequest = async (
    route: 'sync' | 'resume',
    req: Request<{ name: string }>,
    res: Response,
  ): Promise<EnvironmentConfig | undefined> => {
    const environment = find(req.params.name, res);
    if (!environment) return undefined;
    parseParams(noQuery, req.query);
    await readBody(ignoredBody, req, res);
    const problem = bodyProblem(route, req.body);
    if (problem) {
      sendError(res, 400, problem);
      return undefined;
    }
    return environment;
  };

  router.post('/environments/:name/sync', async (req, res) => {
    const environment = await deployRequest('sync', req, res);
    if (!environment) return;
    // As `flux reconcile` of a suspended Kustomization: refused, not held behind the suspension.
    const suspension = await fromRedis(deps.store.suspensions.get(environment.name));
    if (suspension) {
      sendError(
        res,
        409,
        `environment "${environment.name}" is ${describeSuspension(suspension)}: resume it first (POST /environments/${environment.name}/resume)`,
      );
      return;
    }
    const { answer: job, created } = await queueSync('sync', environment, req);
    deps.logger.info(
      { jobId: job.id, environment: environment.name },
      created ? 'manual sync queued' : 'manual sync joined the one queued and not started yet',
    );
    res.status(202).json({ jobs: [job] });
  });

  // Small: a reason is one line. Any content type: `curl -d '{"reason": "…"}'` sends a form type.
  // Not strict: `null` or `42` is JSON, refused below as not an object rather than as a syntax error.
  const suspendBody = express.json({ limit: '4kb', type: () => true, strict: false });

  router.post('/environments/:name/suspend', async (req, res) => {
    const environment = find(req.params.name, res);
    if (!environment) return;
    parseParams(noQuery, req.query);
    // Read after the name is known: an unknown environment is 404 whatever its body.
    await readBody(suspendBody, req, res);
    const reason = suspendReason(req.body);
    if (reason !== null && typeof reason === 'object') {
      sendError(res, 400, reason.problem);
      return;
    }
    const suspension = await fromRedis(deps.store.suspensions.suspend(environment.name, reason));
    deps.logger.info(
      { environment: environment.name, reason: suspension.reason, since: suspension.at },
      'environment suspended: its deploys are held until it is resumed',
    );
    const jobs = await fromRedis(deps.store.list({ environment: environment.name, limit: 1 }));
    res.json(await fromRedis(view(environment, jobs)));
  });

  router.post('/environments/:name/resume', async (req, res) => {
    const environment = await deployRequest('resume', req, res);
    if (!environment) return;
    const lifted = await fromRedis(deps.store.suspensions.resume(environment.name));
    // As `flux resume`: the environment is brought to its branch head at once.
    const { answer: job } = await queueSync('resume', environment, req);
    // The held jobs would otherwise start only at their next recheck; a failure here delays them, no more.
    const woken = await deps.producer.wakeHeld(environment.name).catch((error: unknown) => {
      deps.logger.warn(
        { environment: environment.name, err: errorMessage(error) },
        'could not wake the held jobs: they start at their next recheck (within a minute)',
      );
      return 0;
    });
    deps.logger.info(
      {
        jobId: job.id,
        environment: environment.name,
        wasSuspendedSince: lifted?.at ?? null,
        heldJobs: woken,
      },
      'environment resumed: a deploy of the branch head queued',
    );
    res.status(202).json({ jobs: [job], resumed: lifted });
  });
  return router;
}

/** The reason of a suspend request's JSON body (none, or `{"reason": "…"}`), or what is wrong with it. */
function suspendReason(body: unknown): string | null | { problem: string } {
  // No body at all; an empty one is read as {}.
  if (body === undefined) return null;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return { problem: 'the body must be a JSON object: {"reason": "…"}' };
  const unknown = Object.keys(body).find((key) => key !== 'reason');
  if (unknown !== undefined) return { problem: `unknown field "${unknown}": the body takes only "reason"` };
  const { reason } = body as { reason?: unknown };
  if (reason === undefined || reason === null) return null;
  if (typeof reason !== 'string') return { problem: 'reason must be a string' };
  const trimmed = reason.trim();
  const problem = suspendReasonProblem(trimmed);
  if (problem) return { problem };
  return trimmed === '' ? null : trimmed;
}
