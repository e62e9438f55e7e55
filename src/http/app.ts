import express, { type Express } from 'express';
import { bearerAuth } from './auth.js';
import type { AppDeps } from './deps.js';
import { errorHandler, notFound } from './errors.js';
import { environmentRoutes } from './routes/environments.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { metricsRoutes } from './routes/metrics.js';
import { webhookRoutes } from './routes/webhooks.js';

export type { AppDeps };

/** The receiver and the status API. Never listens: the caller owns the server. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  // Open: probes, and webhooks (they carry their own signature).
  app.use(healthRoutes(deps));
  app.use(webhookRoutes(deps));

  // Everything else needs the API token, when one is configured.
  app.use(['/jobs', '/environments', '/metrics'], bearerAuth(deps.secrets.apiTokens));
  app.use(jobRoutes(deps));
  app.use(environmentRoutes(deps));
  app.use(metricsRoutes(deps));

  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
