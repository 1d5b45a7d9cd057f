/**
 * A webhook URL as agentd shows it (logs, errors, validate, a reload's changes): without a user or
 * password, and with its query as `?…`, where some services put a token.
 */
export function shownWebhookUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '(not a URL)';
  }
  const path = url.protocol === 'http:' || url.protocol === 'https:' ? url.pathname : '';
  return `${url.protocol}//${url.host}${path}${url.search === '' ? '' : '?…'}`;
}
