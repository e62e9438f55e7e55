import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Router } from 'express';
import { PushgateError } from '../../lib/errors.js';
import type { Trigger } from '../../queue/job-data.js';
import { parseJsonBody } from '../../webhooks/parse-body.js';
import {
  createWebhookRegistry,
  environmentsForPush,
  type WebhookProvider,
  type WebhookRegistry,
} from '../../webhooks/registry.js';
import type { PushEvent } from '../../webhooks/types.js';
import { isoTime } from '../../lib/iso-time.js';
import type { Logger } from '../../lib/logger.js';
import type { WebhookOutcome } from '../../lib/metrics.js';
import { bodyBudgetFor, ReceiverBusyError } from '../body-budget.js';
import type { AppDeps } from '../deps.js';
import { sendError, sendJson } from '../errors.js';
import { readRawBody } from '../raw-body.js';
import { jobStatusUrl, publicBase } from '../status-url.js';
import { environmentTarget } from '../../deploy/config-skew.js';

type Outcome = WebhookOutcome;

const UNAUTHORIZED = 'invalid or missing webhook signature or token';
/** Delivery ids are UUIDs (GitHub, GitLab) or `msg_…` (Standard Webhooks): far shorter. */
export const MAX_DELIVERY_ID_LENGTH = 200;

export interface WebhookReceiver {
  registry: WebhookRegistry;
  /**
   * The provider of a `POST /webhooks/github|gitlab` in its plain spelling (any case, one
   * trailing slash, a query string), so node:http can hand it over without express routing;
   * undefined for anything else.
   */
  providerFor(req: IncomingMessage): WebhookProvider | undefined;
  /** Answers the delivery; never rejects (an unexpected error is logged and answered 500). */
  receive(provider: WebhookProvider, req: IncomingMessage, res: ServerResponse): Promise<void>;
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** POST /webhooks/github and /webhooks/gitlab: verify the raw body, then parse, route and enqueue. */
export function createWebhookReceiver(deps: AppDeps): WebhookReceiver {
  const registry = createWebhookRegistry(deps.secrets);
  const now = deps.now ?? Date.now;
  const bodies = bodyBudgetFor(deps.config.server.bodyLimit, (held) =>
    deps.metrics.webhookBodyBytes.set(held),
  );

  const providerFor = (req: IncomingMessage): WebhookProvider | undefined => {
    if (req.method !== 'POST') return undefined;
    let path = pathOf(req.url);
    if (path.length === 16 || path.length === 17) {
      if (path.endsWith('/')) path = path.slice(0, -1);
      path = path.toLowerCase();
      if (path === '/webhooks/github') return registry.github;
      if (path === '/webhooks/gitlab') return registry.gitlab;
    }
    return undefined;
  };

  const receive = async (
    provider: WebhookProvider,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> => {
    try {
      await receiveOrThrow(provider, req, res);
    } catch (error) {
      // As express's error handler does for the status API: logged here, never sent.
      deps.logger.error({ err: error, method: req.method, path: pathOf(req.url) }, 'request failed');
      deps.metrics.webhooks.inc({ provider: provider.name, outcome: 'error' });
      if (res.headersSent) res.destroy();
      else sendError(res, 500, 'internal error');
    }
  };

  const receiveOrThrow = async (
    provider: WebhookProvider,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> => {
    const deliveryId = provider.deliveryId(req.headers);
    // GitHub's and GitLab's are UUIDs; a longer one would be kept for a week as a Redis key.
    const overlong = deliveryId !== undefined && deliveryId.length > MAX_DELIVERY_ID_LENGTH;
    // Made on first use: an accepted push logs its one line without a child logger.
    let child: Logger | undefined;
    const log = (): Logger =>
      (child ??= deps.logger.child({
        provider: provider.name,
        deliveryId: overlong ? `${deliveryId.slice(0, MAX_DELIVERY_ID_LENGTH)}…` : deliveryId,
      }));
    const done = (outcome: Outcome): void => {
      deps.metrics.webhooks.inc({ provider: provider.name, outcome });
    };

    if (!provider.configured) {
      log().warn(
        `webhook rejected: no ${provider.name} webhook secret is configured (set ${provider.secretVariables})`,
      );
      done('unauthorized');
      res.setHeader('Connection', 'close');
      sendError(res, 401, UNAUTHORIZED);
      return;
    }
    const reject = (why: string): void => {
      log().warn({ reason: why }, 'webhook rejected: signature or token did not verify');
      done('unauthorized');
      sendError(res, 401, UNAUTHORIZED);
    };
    // Refused on its headers, a body is never read: an unsigned flood costs no memory.
    const refused = provider.refuseFromHeaders(req.headers, now());
    if (refused) {
      res.setHeader('Connection', 'close');
      reject(refused.why);
      return;
    }
    // Neither GitHub nor GitLab encodes a webhook: a gzip body would only fail later as "not UTF-8".
    const encoding = req.headers['content-encoding']?.trim();
    if (encoding && encoding.toLowerCase() !== 'identity') {
      const named = JSON.stringify(encoding.slice(0, 40));
      log().warn({ reason: `Content-Encoding ${named}` }, 'webhook refused: encoded body');
      done('invalid');
      res.setHeader('Connection', 'close');
      sendError(
        res,
        415,
        `Content-Encoding ${named} is not supported: send the body unencoded, as GitHub and GitLab do`,
      );
      return;
    }
    try {
      const rawBody = await readRawBody(req, deps.config.server.bodyLimit, { budget: bodies, until: res });
      // JSON is UTF-8 (RFC 8259); other bytes are verified as they came, then refused as malformed.
      const text = isUtf8(rawBody) ? rawBody.toString('utf8') : undefined;
      const verified = await provider.verify({ headers: req.headers, rawBody, text, now: now() });
      if (!verified.ok) {
        reject(verified.why);
        return;
      }
      if (text === undefined)
        throw new PushgateError('bad_request', 'body is not UTF-8 (JSON must be)', { status: 400 });
      if (overlong) {
        const limit = `longer than ${MAX_DELIVERY_ID_LENGTH} characters`;
        throw new PushgateError('bad_request', `${provider.deliveryHeaders}: ${limit}`, { status: 400 });
      }
      const eventName = provider.eventName(req.headers);
      const event = provider.parse(eventName, parseJsonBody(text, req.headers['content-type']), deliveryId);
      if (event.kind === 'ping') {
        log().info('webhook ping');
        done('ignored');
        sendJson(res, 200, { ok: true });
        return;
      }
      if (event.kind === 'ignored') {
        log().info({ event: eventName, reason: event.reason }, 'webhook ignored');
        done('ignored');
        sendJson(res, 200, { ignored: event.reason });
        return;
      }
      await enqueuePush(event.push, req, res, done, log);
    } catch (error) {
      if (!(error instanceof PushgateError) || error.status === undefined) throw error;
      const outcome: Outcome =
        error instanceof ReceiverBusyError
          ? 'busy'
          : error.status === 413
            ? 'too_large'
            : error.status === 503
              ? 'unavailable'
              : error.status === 400
                ? 'invalid'
                : 'error';
      log().warn({ status: error.status, reason: error.message }, 'webhook refused');
      done(outcome);
      // A body not read to its end is not drained: the connection is closed instead.
      if (error.status === 413 || error instanceof ReceiverBusyError) res.setHeader('Connection', 'close');
      if (error instanceof ReceiverBusyError) res.setHeader('Retry-After', '1');
      sendError(res, error.status, error.message);
    }
  };

  const enqueuePush = async (
    push: PushEvent,
    req: IncomingMessage,
    res: ServerResponse,
    done: (outcome: Outcome) => void,
    log: () => Logger,
  ): Promise<void> => {
    const environments = environmentsForPush(deps.config.environments, push);
    const where = `${push.provider} ${push.repository} branch ${push.branch}`;
    if (environments.length === 0) {
      log().info(
        { repository: push.repository, branch: push.branch },
        'webhook ignored: no environment matches',
      );
      done('ignored');
      sendJson(res, 200, { ignored: `no environment is configured for ${where}` });
      return;
    }
    const trigger: Trigger = {
      kind: 'webhook',
      provider: push.provider,
      deliveryId: push.deliveryId,
      sha: push.after,
      pusher: push.pusher,
    };
    const receivedAt = isoTime(now());
    const base = publicBase(deps.config.server.publicUrl, req);
    // Only a configured base goes on the record (and the commit status): a Host header is the sender's to choose.
    const recordedBase = deps.config.server.publicUrl ? base : undefined;
    const jobs = await Promise.all(
      environments.map((environment) =>
        deps.producer.enqueue(
          environment.name,
          trigger,
          receivedAt,
          recordedBase,
          environmentTarget(environment),
        ),
      ),
    );
    // A line per job, with the job's id and environment at the top level like every job
    // line of the worker, so selecting one jobId shows its deploy from the webhook on.
    for (const job of jobs) {
      deps.logger.info(
        {
          provider: push.provider,
          deliveryId: push.deliveryId,
          jobId: job.id,
          environment: job.environment,
          created: job.created,
          repository: push.repository,
          branch: push.branch,
          sha: job.sha ?? push.after,
        },
        'webhook accepted',
      );
    }
    done(jobs.some((job) => job.created) ? 'queued' : 'duplicate');
    sendJson(res, 202, {
      jobs: jobs.map((job) => ({
        id: job.id,
        environment: job.environment,
        // A redelivered id answers with its job, whose commit a changed body does not change.
        sha: job.sha ?? push.after,
        statusUrl: jobStatusUrl(base, job.id),
      })),
    });
  };

  return { registry, providerFor, receive };
}

/**
 * The same routes through express, for the spellings `providerFor` leaves to it (an
 * absolute-form request target...), so the lean path changes no answer.
 */
export function webhookRoutes(receiver: WebhookReceiver): Router {
  const { registry } = receiver;
  const router = Router();
  router.post('/webhooks/github', (req, res) => receiver.receive(registry.github, req, res));
  router.post('/webhooks/gitlab', (req, res) => receiver.receive(registry.gitlab, req, res));
  return router;
}
