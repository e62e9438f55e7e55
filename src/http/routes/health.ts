import { Router } from 'express';
import { redisModeProblem } from '../../queue/connection.js';
import type { AppDeps } from '../deps.js';

const READY_TIMEOUT_MS = 500;

async function redisAnswers(deps: AppDeps): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([deps.store.answers(), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** /healthz: the process runs. /readyz: Redis answers, so webhooks can be queued. */
export function healthRoutes(deps: AppDeps): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.status(200).json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const modeProblem = redisModeProblem(deps.redis, 'public');
    if (modeProblem) {
      res.status(503).json({ status: 'unavailable', error: modeProblem });
      return;
    }
    if (await redisAnswers(deps)) {
      res.status(200).json({ status: 'ready' });
      return;
    }
    res.status(503).json({ status: 'unavailable', error: 'Redis does not answer' });
  });
  return router;
}
