import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/lib/metrics.js';

const RULES_FILE = fileURLToPath(new URL('../../../deploy/prometheus/pushgate-rules.yaml', import.meta.url));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = (
  parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }
).groups.flatMap((group) => group.rules);

/** Series names pushgate exports: each metric, and a histogram's _bucket, _sum and _count. */
function exportedSeriesNames(): Set<string> {
  const names = new Set<string>();
  for (const metric of createMetrics().registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/** Metrics the rules may use that pushgate does not export: Prometheus' own, and redis_exporter's. */
const EXTERNAL = new Set(['up', 'redis_up', 'redis_memory_used_bytes', 'redis_memory_max_bytes']);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
]);

/** The metric names in a PromQL expression: identifiers outside strings, matchers and groupings that call nothing. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b\d[\w.]*/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)]
    .filter(([, name, call]) => !call && !KEYWORDS.has(name!))
    .map(([, name]) => name!);
}

describe('deploy/prometheus/pushgate-rules.yaml', () => {
  it('finds the metric names of an expression, not its functions, labels or keywords', () => {
    expect(
      metricNames(
        'sum by (env) (rate(pushgate_x_total{a="b",c=~"d|e"}[5m] offset 1h)) > 0 and on (job) up unless absent(redis_up)',
      ),
    ).toEqual(['pushgate_x_total', 'up', 'redis_up']);
  });

  it('parses as a rules file of named, labelled alerts', () => {
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(typeof rule.expr).toBe('string');
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
    }
  });

  it('references only metrics the code defines (or Prometheus and redis_exporter export)', () => {
    const exported = exportedSeriesNames();
    for (const rule of rules) {
      const names = metricNames(rule.expr);
      expect(names.length, `${rule.alert}: no metric found in ${rule.expr}`).toBeGreaterThan(0);
      for (const name of names) {
        expect({ alert: rule.alert, name, known: exported.has(name) || EXTERNAL.has(name) }).toEqual({
          alert: rule.alert,
          name,
          known: true,
        });
      }
    }
  });

  it('selects no scrape job by name, and reads the queue-wide gauge with max, never sum', () => {
    for (const rule of rules) {
      expect(rule.expr, rule.alert).not.toMatch(/\bjob\s*=~?/);
      expect(rule.expr, rule.alert).not.toMatch(/\bsum\b[^()]*\(\s*pushgate_(queue_depth|jobs)\b/);
    }
  });
});
