import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import { bearerAuth, metricsTokens } from './auth.js';
import { browserGuard } from './browser-guard.js';
import type { AppDeps } from './deps.js';
import { errorHandler, NO_STORE_NO_SNIFF, notFound, optionsAnswer } from './errors.js';
import { environmentRoutes } from './routes/environments.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { metricsRoutes } from './routes/metrics.js';
import { createWebhookReceiver, webhookRoutes } from './routes/webhooks.js';

export type { AppDeps };

/** What node:http calls for every request. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The receiver and the status API. Never listens: the caller owns the server.
 *
 * Webhook posts, the hot path, go straight to the receiver: express's routing and response
 * helpers cost more than the rest of the request's own work. Everything else is express.
 */
export function createApp(deps: AppDeps): RequestHandler {
  const receiver = createWebhookReceiver(deps);
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use((_req, res, next) => {
    res.set(NO_STORE_NO_SNIFF);
    next();
  });
  app.use(optionsAnswer);

  // Open: probes, and webhooks (they carry their own signature).
  app.use(healthRoutes(deps));
  app.use(webhookRoutes(receiver));

  // Everything else needs the API token, when one is configured; /metrics a metrics token too.
  app.use(
    ['/jobs', '/environments', '/metrics'],
    browserGuard(deps.config.server.host, deps.secrets.apiTokens, deps.config.server.publicUrl),
  );
  app.use(['/jobs', '/environments'], bearerAuth(deps.secrets.apiTokens));
  app.use('/metrics', bearerAuth(metricsTokens(deps.secrets), 'metrics'));
  app.use(jobRoutes(deps));
  app.use(environmentRoutes(deps));
  app.use(metricsRoutes(deps));

  app.use(notFound);
  app.use(errorHandler(deps.logger));

  return (req, res) => {
    const provider = receiver.providerFor(req);
    if (provider) void receiver.receive(provider, req, res);
    else app(req, res);
  };
}
