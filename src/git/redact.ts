/**
 * Removes a secret, and the base64 forms it takes inside an Authorization header, from text
 * that may reach a log or an error message.
 */
export function redactSecret(text: string, secret: string | undefined): string {
  if (!secret) return text;
  const forms = new Set([secret, Buffer.from(secret).toString('base64')]);
  for (const user of BASIC_AUTH_USERS) forms.add(Buffer.from(`${user}:${secret}`).toString('base64'));
  let result = text;
  // Longest first: base64 of the token alone can be the tail of a Basic credential's base64.
  for (const form of [...forms].sort((a, b) => b.length - a.length))
    result = result.split(form).join('[redacted]');
  return result;
}

/** The user names git over HTTPS is given with a token (see auth.ts). */
export const BASIC_AUTH_USERS = ['x-access-token', 'oauth2'] as const;

/**
 * A repository URL fit for a message: without the user name and password (often a token) an
 * `https://user:token@host/…` URL carries. An scp-like `git@host:path` is left as it is: its
 * user is an SSH login, not a secret.
 */
export function urlWithoutCredentials(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (parsed.username === '' && parsed.password === '') return url;
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}

/** `scheme://user:password@` anywhere in `text` (git's own messages quote the URL) less the userinfo. */
export function stripUrlCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]*@/gi, '$1');
}
