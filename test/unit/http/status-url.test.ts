import type { Request } from 'express';
import { describe, expect, it } from 'vitest';
import { jobStatusUrl, publicBase } from '../../../src/http/status-url.js';

function requestWith(host: string | undefined): Request {
  return {
    headers: host === undefined ? {} : { host },
    socket: { localAddress: '10.0.0.5', localPort: 8080 },
  } as unknown as Request;
}

describe('status URLs', () => {
  it('uses server.publicUrl, keeping its path', () => {
    expect(
      jobStatusUrl(publicBase('https://deploy.example.com/pushgate', requestWith('ignored')), 'j-1'),
    ).toBe('https://deploy.example.com/pushgate/jobs/j-1');
    expect(jobStatusUrl(publicBase('https://deploy.example.com/', requestWith(undefined)), 'j-1')).toBe(
      'https://deploy.example.com/jobs/j-1',
    );
    expect(
      jobStatusUrl(publicBase('https://Deploy.Example.com/p?x=1#top', requestWith(undefined)), 'j-1'),
    ).toBe('https://deploy.example.com/p/jobs/j-1');
  });

  it('falls back to the Host header when it is a bare host[:port]', () => {
    expect(jobStatusUrl(publicBase(undefined, requestWith('Pushgate.Internal:8080')), 'j-1')).toBe(
      'http://pushgate.internal:8080/jobs/j-1',
    );
    expect(jobStatusUrl(publicBase(undefined, requestWith('[::1]:8080')), 'j-1')).toBe(
      'http://[::1]:8080/jobs/j-1',
    );
  });

  it('ignores a Host header carrying a path, user or scheme and uses the local address', () => {
    for (const host of ['evil.example/x', 'user@evil.example', 'http://evil.example', 'a b']) {
      expect(jobStatusUrl(publicBase(undefined, requestWith(host)), 'j-1')).toBe(
        'http://10.0.0.5:8080/jobs/j-1',
      );
    }
  });

  it('encodes the job id as one path segment', () => {
    expect(jobStatusUrl('http://h/', '../admin?x')).toBe('http://h/jobs/..%2Fadmin%3Fx');
  });
});
