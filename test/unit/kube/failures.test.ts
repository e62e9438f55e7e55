import { describe, expect, it } from 'vitest';
import { shortenQuotedValues } from '../../../src/kube/failures.js';

describe('shortenQuotedValues', () => {
  it('cuts long quoted values, JSON or Go, and keeps short ones and the reason after them', () => {
    const json = `{"labels":{"a":"}{"},"Spec":${JSON.stringify({ containers: [{ name: 'x'.repeat(200) }] })}}`;
    const go = `core.PodTemplateSpec{ObjectMeta:v1.ObjectMeta{Name:"${'y'.repeat(200)}"}}`;

    expect(shortenQuotedValues(`spec.template: Invalid value: ${json}: field is immutable`)).toBe(
      'spec.template: Invalid value: {…}: field is immutable',
    );
    expect(shortenQuotedValues(`spec.template: Invalid value: ${go}: field is immutable`)).toBe(
      'spec.template: Invalid value: core.PodTemplateSpec{…}: field is immutable',
    );
    expect(shortenQuotedValues('spec.selector: Invalid value: {"app":"web"}: field is immutable')).toBe(
      'spec.selector: Invalid value: {"app":"web"}: field is immutable',
    );
  });
});
