import { describe, expect, it } from 'vitest';
import {
  createMetrics,
  initialiseSeries,
  statusProviders,
  WEBHOOK_OUTCOMES,
} from '../../../src/lib/metrics.js';

describe('initialiseSeries', () => {
  it("starts every series an alert watches at 0, so a counter's first increment is a visible increase", async () => {
    const metrics = createMetrics();
    initialiseSeries(metrics, { webhooks: true, environments: ['production'] });

    const text = await metrics.registry.metrics();

    for (const provider of ['github', 'gitlab'])
      for (const outcome of WEBHOOK_OUTCOMES)
        expect(text).toContain(`pushgate_webhooks_total{provider="${provider}",outcome="${outcome}"} 0`);
    for (const state of ['succeeded', 'failed', 'superseded'])
      expect(text).toContain(`pushgate_jobs_finished_total{environment="production",state="${state}"} 0`);
  });

  it('starts commit status outcomes at 0 for the providers the process holds a token of', async () => {
    const metrics = createMetrics();
    initialiseSeries(metrics, {
      statusProviders: statusProviders({ githubToken: 'ghs_x', gitlabToken: undefined }),
    });

    const text = await metrics.registry.metrics();

    for (const outcome of ['delivered', 'skipped', 'retried', 'unauthorized', 'failed'])
      expect(text).toContain(`pushgate_commit_statuses_total{provider="github",outcome="${outcome}"} 0`);
    expect(text).not.toContain('provider="gitlab"');
  });

  it('leaves out what the process does not count: a receiver finishes no jobs', async () => {
    const metrics = createMetrics();
    initialiseSeries(metrics, { webhooks: true });

    expect(await metrics.registry.metrics()).not.toMatch(/pushgate_jobs_finished_total\{/);
  });
});
