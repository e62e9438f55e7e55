import { describe, expect, it } from 'vitest';
import { createMetrics, initialiseSeries, WEBHOOK_OUTCOMES } from '../../../src/lib/metrics.js';

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

  it('leaves out what the process does not count: a receiver finishes no jobs', async () => {
    const metrics = createMetrics();
    initialiseSeries(metrics, { webhooks: true });

    expect(await metrics.registry.metrics()).not.toMatch(/pushgate_jobs_finished_total\{/);
  });
});
