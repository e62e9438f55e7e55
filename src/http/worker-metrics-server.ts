import { createServer, type Server } from 'node:http';
import type { Metrics } from '../lib/metrics.js';
import { isAuthorized, sendUnauthorized } from './auth.js';
import { NO_STORE_NO_SNIFF, sendError, sendJson } from './errors.js';

/**
 * A worker's only HTTP surface: `/healthz` for its liveness probe and `/metrics` for the
 * deploy metrics it alone counts. `/metrics` takes the same bearer tokens as the receiver's
 * (`metricsTokens`: an API or a metrics-only token).
 */
export async function serveWorkerMetrics(
  port: number,
  metrics: Metrics,
  tokens: readonly string[],
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 404, 'not found');
      return;
    }
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path !== '/metrics') {
      sendError(res, 404, 'not found');
      return;
    }
    if (!isAuthorized(req.headers.authorization, tokens)) {
      sendUnauthorized(res, 'metrics');
      return;
    }
    metrics.registry.metrics().then(
      (text) =>
        res.writeHead(200, { ...NO_STORE_NO_SNIFF, 'Content-Type': metrics.registry.contentType }).end(text),
      () => sendError(res, 500, 'internal error'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  return server;
}
