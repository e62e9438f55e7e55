import { describe, expect, it } from 'vitest';
import { isLoopbackAddress, serverEndpoints } from '../../../src/http/endpoints.js';

describe('server endpoints', () => {
  it('are on the address bound, a wildcard one shown as localhost', () => {
    expect(serverEndpoints({ address: '127.0.0.1', port: 8080 }, undefined)).toEqual({
      githubWebhookUrl: 'http://127.0.0.1:8080/webhooks/github',
      gitlabWebhookUrl: 'http://127.0.0.1:8080/webhooks/gitlab',
      statusUrl: 'http://127.0.0.1:8080/environments',
    });
    expect(serverEndpoints({ address: '0.0.0.0', port: 8080 }, undefined).githubWebhookUrl).toBe(
      'http://localhost:8080/webhooks/github',
    );
    expect(serverEndpoints({ address: '::', port: 8080 }, undefined).statusUrl).toBe(
      'http://localhost:8080/environments',
    );
    expect(serverEndpoints({ address: '::1', port: 8080 }, undefined).gitlabWebhookUrl).toBe(
      'http://[::1]:8080/webhooks/gitlab',
    );
  });

  it('are under server.publicUrl when it is set, keeping its path', () => {
    expect(
      serverEndpoints({ address: '0.0.0.0', port: 8080 }, 'https://deploy.example.com/pushgate'),
    ).toEqual({
      githubWebhookUrl: 'https://deploy.example.com/pushgate/webhooks/github',
      gitlabWebhookUrl: 'https://deploy.example.com/pushgate/webhooks/gitlab',
      statusUrl: 'https://deploy.example.com/pushgate/environments',
    });
  });
});

describe('loopback addresses', () => {
  it.each(['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1'])('%s is loopback', (address) => {
    expect(isLoopbackAddress(address)).toBe(true);
  });

  it.each(['0.0.0.0', '::', '10.0.0.5', '::ffff:10.0.0.5', 'fe80::1'])('%s is not', (address) => {
    expect(isLoopbackAddress(address)).toBe(false);
  });
});
