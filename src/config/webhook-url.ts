/**
 * A webhook URL as agentd shows it (logs, errors, validate, a reload's changes): without a user or
 * password, with its query as `?…`, where some services put a token, and with each path segment that
 * looks like a token as `…` (Slack's /services/T…/B…/SECRET, Discord's /api/webhooks/ID/SECRET).
 */
export function shownWebhookUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '(not a URL)';
  }
  const path =
    url.protocol === 'http:' || url.protocol === 'https:'
      ? url.pathname
          .split('/')
          .map((segment) => (looksLikeToken(segment) ? '…' : segment))
          .join('/')
      : '';
  return `${url.protocol}//${url.host}${path}${url.search === '' ? '' : '?…'}`;
}

/** 16 characters or more with a digit or both letter cases: an id or a key, not a word like `notifications`. */
function looksLikeToken(segment: string): boolean {
  return segment.length >= 16 && (/[0-9]/.test(segment) || (/[a-z]/.test(segment) && /[A-Z]/.test(segment)));
}
