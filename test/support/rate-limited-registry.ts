/**
 * A STAND-IN for Docker Hub once an address has used up its anonymous pulls — a real HTTP server on 127.0.0.1 (the
 * tests' dockerd treats 127.0.0.0/8 as an insecure registry, so it speaks plain http to it). It answers as
 * registry-1.docker.io does:
 *   GET /v2/                 401 with `WWW-Authenticate: Bearer realm="…/token",service="registry.docker.io"`
 *                            (the registry API's version check; distribution registry/handlers/app.go authorized)
 *   GET /token?…             an anonymous bearer token (the token realm, distribution docs/spec/auth/token.md)
 *   GET|HEAD /v2/<repo>/manifests/<ref>
 *                            429 with the registry API's JSON error body, code TOOMANYREQUESTS (distribution
 *                            registry/api/errcode/register.go ErrorCodeTooManyRequests: HTTP 429) and the message and
 *                            `ratelimit-*` headers Docker's docs show for the pull limit (docker-hub/usage/pulls.md)
 * Nothing else is served; every request is recorded.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export const PULL_LIMIT_MESSAGE = 'You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit';

export interface RateLimitedRegistry {
  /** 127.0.0.1:<port>, for image references (`<host>/<repo>:<tag>`). */
  host: string;
  requests: Array<{ method: string; path: string }>;
  close(): Promise<void>;
}

export async function startRateLimitedRegistry(): Promise<RateLimitedRegistry> {
  const requests: RateLimitedRegistry['requests'] = [];
  let host = '';
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ method: req.method ?? 'GET', path: url.pathname });
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'docker-distribution-api-version': 'registry/2.0', ...headers });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    if (url.pathname === '/token') {
      json(200, { token: 'anonymous', access_token: 'anonymous', expires_in: 300, issued_at: new Date().toISOString() });
    } else if (url.pathname === '/v2/' && !req.headers.authorization) {
      json(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }, { 'www-authenticate': `Bearer realm="http://${host}/token",service="registry.docker.io"` });
    } else if (url.pathname === '/v2/') {
      json(200, {});
    } else if (/^\/v2\/.+\/manifests\/[^/]+$/.test(url.pathname)) {
      json(429, { errors: [{ code: 'TOOMANYREQUESTS', message: PULL_LIMIT_MESSAGE }] }, { 'ratelimit-limit': '10;w=3600', 'ratelimit-remaining': '0;w=3600' });
    } else {
      json(404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
