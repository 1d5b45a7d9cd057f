import { shownWebhookUrl } from '../config/webhook-url.js';
import { AgentdError, errorMessage } from '../errors.js';

/** How one POST failed, as the metrics count it. */
export type WebhookFailure = 'http_4xx' | 'http_5xx' | 'redirect' | 'timeout' | 'network';

/**
 * The 4xx answers that ask to try later (408 Request Timeout, 425 Too Early, 429 Too Many Requests);
 * every other 4xx says the request itself is wrong (its URL, its signature), so the same POST later
 * would get the same answer.
 */
const TRY_LATER_4XX: ReadonlySet<number> = new Set([408, 425, 429]);

/**
 * Whether an answer's status says no later attempt can be taken: a 3xx (a redirect, which agentd does not
 * follow, so the same POST later is redirected again) or a 4xx but those asking to try later.
 */
export function permanentStatus(status: number): boolean {
  if (status >= 300 && status < 400) return true;
  return status >= 400 && status < 500 && !TRY_LATER_4XX.has(status);
}

export class WebhookError extends AgentdError {
  /**
   * Trying again cannot help (a 3xx answer, or a 4xx but 408, 425 and 429): the delivery ends failed at
   * once.
   */
  readonly permanent: boolean;

  constructor(
    readonly failure: WebhookFailure,
    message: string,
    cause?: unknown,
    /** The wait the receiver asked for (Retry-After of a 429 or 5xx answer), in ms. */
    readonly retryAfterMs?: number,
    /** The answer's status, when there was one. */
    readonly status?: number,
    /**
     * Where a redirect pointed (its Location), as shown: its scheme and host only (see redirectTarget),
     * never its path or query, where a token may be.
     */
    readonly redirectTo?: string,
  ) {
    super('WEBHOOK_FAILED', message, { operation: 'post notification', cause });
    this.permanent = status !== undefined && permanentStatus(status);
  }
}

/**
 * A Retry-After header's wait in ms: delay-seconds or an HTTP date (RFC 9110 §10.2.3), a date past
 * meaning 0; undefined when absent or neither.
 */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Date.parse takes much besides HTTP dates: only a day name, a date and GMT (not asctime's form).
  if (!/^[A-Z][a-z]{2,8}, .+ GMT$/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface WebhookRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

/**
 * POSTs a JSON body; a 2xx answer is success, anything else a WebhookError (`permanent` for a redirect
 * and a 4xx answer that does not ask to try later: the notifier tries it no more). Redirects are not followed
 * (the signed body goes where it was configured to, or nowhere), the answer's body is not read, and
 * the whole exchange has a deadline.
 */
export async function postWebhook(
  request: WebhookRequest,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<void> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  // Messages name the URL without its query (or a user and password): it may hold a token.
  const shown = shownWebhookUrl(request.url);
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...request.headers },
      body: request.body,
      redirect: 'manual',
      signal,
    });
  } catch (error) {
    if (deadline.aborted) {
      throw new WebhookError('timeout', `no answer from ${shown} within ${options.timeoutMs} ms`, error);
    }
    throw new WebhookError(
      'network',
      `cannot reach ${shown}: ${networkReason(error, request.url, shown)}`,
      error,
    );
  }
  // Nothing of the answer is needed but its status and Retry-After: release the connection unread.
  await response.body?.cancel().catch(() => {});
  if (response.ok) return;
  const status = response.status;
  const failure: WebhookFailure =
    status >= 300 && status < 400 ? 'redirect' : status >= 500 ? 'http_5xx' : 'http_4xx';
  // A redirect's Retry-After is about the redirect (RFC 9110): only a 429's and a 5xx's ask for a wait.
  const wait =
    status === 429 || status >= 500
      ? retryAfterMs(response.headers.get('retry-after'), Date.now())
      : undefined;
  const redirectTo =
    failure === 'redirect' ? redirectTarget(response.headers.get('location'), request.url) : undefined;
  const redirectNote =
    failure === 'redirect'
      ? ` (a redirect${redirectTo === undefined ? '' : ` to ${redirectTo}`}, not followed)`
      : '';
  throw new WebhookError(
    failure,
    `${shown} answered ${status}${redirectNote}${wait === undefined ? '' : ` (Retry-After: ${Math.ceil(wait / 1000)} s)`}`,
    undefined,
    wait,
    status,
    redirectTo,
  );
}

/**
 * Why fetch failed, for a message: its cause's code (ECONNREFUSED), else its cause's own words (`bad
 * port`: fetch's "fetch failed" alone says nothing) unless they name the host (whose name may hold a
 * key: shownWebhookUrl), with the URL, should they name it, as shown.
 */
function networkReason(error: unknown, url: string, shown: string): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  const words = typeof cause?.message === 'string' ? cause.message.split(url).join(shown) : '';
  const host = URL.canParse(url) ? new URL(url).hostname : url;
  return words === '' || words.includes(host) ? errorMessage(error) : words;
}

/**
 * Where a redirect's Location points, as logs may show it: its scheme and host (read against the
 * webhook's URL, so a relative one names the webhook's own host), with a host name label that looks like
 * a token as `…` (shownWebhookUrl); never its path or query. Undefined without one that parses.
 */
export function redirectTarget(location: string | null, base: string): string | undefined {
  if (location === null) return undefined;
  try {
    const target = new URL(location, base);
    return shownWebhookUrl(`${target.protocol}//${target.host}`).replace(/\/$/, '');
  } catch {
    return undefined;
  }
}
