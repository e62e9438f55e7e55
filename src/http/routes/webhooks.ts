import { Router, type Request, type Response } from 'express';
import { PushgateError } from '../../lib/errors.js';
import type { Trigger } from '../../queue/job-data.js';
import { parseJsonBody } from '../../webhooks/parse-body.js';
import { createWebhookRegistry, environmentsForPush, type WebhookProvider } from '../../webhooks/registry.js';
import type { PushEvent } from '../../webhooks/types.js';
import type { AppDeps } from '../deps.js';
import { sendError } from '../errors.js';
import { readRawBody } from '../raw-body.js';
import { jobStatusUrl, publicBase } from '../status-url.js';

type Outcome =
  'queued' | 'duplicate' | 'ignored' | 'unauthorized' | 'invalid' | 'too_large' | 'unavailable' | 'error';

const UNAUTHORIZED = 'invalid or missing webhook signature or token';

/** POST /webhooks/github and /webhooks/gitlab: verify the raw body, then parse, route and enqueue. */
export function webhookRoutes(deps: AppDeps): Router {
  const registry = createWebhookRegistry(deps.secrets);
  const now = deps.now ?? Date.now;
  const router = Router();

  const receive = async (provider: WebhookProvider, req: Request, res: Response): Promise<void> => {
    const deliveryId = provider.deliveryId(req.headers);
    const log = deps.logger.child({ provider: provider.name, deliveryId });
    const done = (outcome: Outcome): void => {
      deps.metrics.webhooks.inc({ provider: provider.name, outcome });
    };

    if (!provider.configured) {
      log.warn(
        `webhook rejected: no ${provider.name} webhook secret is configured (set ${provider.secretVariables})`,
      );
      done('unauthorized');
      res.set('Connection', 'close');
      sendError(res, 401, UNAUTHORIZED);
      return;
    }
    try {
      const rawBody = await readRawBody(req, deps.config.server.bodyLimit);
      const verified = await provider.verify({ headers: req.headers, rawBody, now: now() });
      if (!verified.ok) {
        log.warn({ reason: verified.why }, 'webhook rejected: signature or token did not verify');
        done('unauthorized');
        sendError(res, 401, UNAUTHORIZED);
        return;
      }
      const eventName = provider.eventName(req.headers);
      const event = provider.parse(
        eventName,
        parseJsonBody(rawBody, req.headers['content-type']),
        deliveryId,
      );
      if (event.kind === 'ping') {
        log.info('webhook ping');
        done('ignored');
        res.status(200).json({ ok: true });
        return;
      }
      if (event.kind === 'ignored') {
        log.info({ event: eventName, reason: event.reason }, 'webhook ignored');
        done('ignored');
        res.status(200).json({ ignored: event.reason });
        return;
      }
      await enqueuePush(event.push, req, res, done, log);
    } catch (error) {
      if (!(error instanceof PushgateError) || error.status === undefined) throw error;
      const outcome: Outcome =
        error.status === 413
          ? 'too_large'
          : error.status === 503
            ? 'unavailable'
            : error.status === 400
              ? 'invalid'
              : 'error';
      log.warn({ status: error.status, reason: error.message }, 'webhook refused');
      done(outcome);
      // A body not read to its end is not drained: the connection is closed instead.
      if (error.status === 413) res.set('Connection', 'close');
      sendError(res, error.status, error.message);
    }
  };

  const enqueuePush = async (
    push: PushEvent,
    req: Request,
    res: Response,
    done: (outcome: Outcome) => void,
    log: AppDeps['logger'],
  ): Promise<void> => {
    const environments = environmentsForPush(deps.config.environments, push);
    const where = `${push.provider} ${push.repository} branch ${push.branch}`;
    if (environments.length === 0) {
      log.info(
        { repository: push.repository, branch: push.branch },
        'webhook ignored: no environment matches',
      );
      done('ignored');
      res.status(200).json({ ignored: `no environment is configured for ${where}` });
      return;
    }
    const trigger: Trigger = {
      kind: 'webhook',
      provider: push.provider,
      deliveryId: push.deliveryId,
      sha: push.after,
      pusher: push.pusher,
    };
    const receivedAt = new Date(now()).toISOString();
    const jobs = await Promise.all(
      environments.map((environment) => deps.producer.enqueue(environment.name, trigger, receivedAt)),
    );
    const base = publicBase(deps.config.server.publicUrl, req);
    log.info(
      {
        repository: push.repository,
        branch: push.branch,
        sha: push.after,
        jobs: jobs.map(({ id, environment, created }) => ({ id, environment, created })),
      },
      'webhook accepted',
    );
    done(jobs.some((job) => job.created) ? 'queued' : 'duplicate');
    res.status(202).json({
      jobs: jobs.map((job) => ({
        id: job.id,
        environment: job.environment,
        sha: push.after,
        statusUrl: jobStatusUrl(base, job.id),
      })),
    });
  };

  router.post('/webhooks/github', (req, res) => receive(registry.github, req, res));
  router.post('/webhooks/gitlab', (req, res) => receive(registry.gitlab, req, res));
  return router;
}
