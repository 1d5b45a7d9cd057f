/**
 * A webhook URL as agentd shows it (logs, errors, validate, a reload's changes): without a user or
 * password, with a host name label that looks like a token as `…`, with its query as `?…`, where some services put a token, and with each path segment that
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
  return `${url.protocol}//${shownHost(url)}${path}${url.search === '' ? '' : '?…'}`;
}

/**
 * The host with each label in front of the domain that looks like a token as `…`: some services give
 * each endpoint a secret name of its own (Pipedream's `eo2kbzmlhi8v9ld.m.pipedream.net`). Host names
 * have one case: a label of 12 characters or more with letters and digits.
 */
function shownHost(url: URL): string {
  const name = url.hostname;
  // An IP address (v6 in brackets, v4 all digits and dots) has no labels to hide.
  if (name.startsWith('[') || /^[0-9.]+$/.test(name)) return url.host;
  const labels = name.split('.');
  const shown = labels.map((label, i) =>
    i < labels.length - 2 && label.length >= 12 && /[0-9]/.test(label) && /[a-z]/.test(label) ? '…' : label,
  );
  return `${shown.join('.')}${url.port === '' ? '' : `:${url.port}`}`;
}

/**
 * What may be a key rather than a name, `…` when shown (showing too little is harmless, too much is
 * not): a segment with parameters (`;token=...`); 16 characters or more with a digit, both letter cases
 * or a run of 16 letters (`SECRETSECRETSECRET`, `sk_live_abcdefghijklmnop`); 6 or more with letters
 * and digits mixed (Zapier's `abc1xyz`). Not a word like `notifications` or `deploy-notifications`.
 */
function looksLikeToken(segment: string): boolean {
  if (/[;=]/.test(segment)) return true;
  const letters = /[A-Za-z]/.test(segment);
  const digits = /[0-9]/.test(segment);
  if (segment.length >= 6 && letters && digits) return true;
  return (
    segment.length >= 16 &&
    (digits || (/[a-z]/.test(segment) && /[A-Z]/.test(segment)) || /[A-Za-z]{16}/.test(segment))
  );
}

/**
 * The ports fetch never connects to (the Fetch standard's "bad ports": SMTP, IRC, SIP, X11 and the
 * like), whatever answers there: a webhook on one fails every attempt with only "fetch failed" to say
 * why, so the configuration refuses it.
 */
export const FETCH_BLOCKED_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104,
  109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515,
  526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
  3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);
