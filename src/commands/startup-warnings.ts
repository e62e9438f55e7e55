import type { Config } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { isLoopbackAddress } from '../http/endpoints.js';
import type { RunningServer } from '../http/server.js';
import type { Logger } from '../lib/logger.js';
import { missingWebhookSecrets } from './webhook-secret-warnings.js';

/**
 * What serve and start warn about once listening: webhooks that every delivery of will be
 * refused, and a status API that anyone on the network can use, deploys included.
 */
export function logStartupWarnings(
  logger: Logger,
  config: Config,
  secrets: Secrets,
  server: Pick<RunningServer, 'address'>,
): void {
  for (const warning of missingWebhookSecrets(config, secrets))
    logger.warn({ provider: warning.provider }, warning.message);
  if (secrets.apiTokens.length === 0 && !isLoopbackAddress(server.address)) {
    logger.warn(
      { address: server.address },
      'PUSHGATE_API_TOKEN is not set: the status API is unauthenticated on a non-loopback address; ' +
        'anyone who reaches it can read jobs, queue deploys and suspend environments (POST /environments/:name/sync, /suspend)',
    );
  }
}
