import { shownWebhookUrl } from '../config/webhook-url.js';
import { AgentdError } from '../errors.js';

/** How one POST failed, as the metrics count it. */
export type WebhookFailure = 'http_4xx' | 'http_5xx' | 'redirect' | 'timeout' | 'network';

export class WebhookError extends AgentdError {
  constructor(
    readonly failure: WebhookFailure,
    message: string,
    cause?: unknown,
  ) {
    super('WEBHOOK_FAILED', message, { operation: 'post notification', cause });
  }
}

export interface WebhookRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

/**
 * POSTs a JSON body; a 2xx answer is success, anything else a WebhookError. Redirects are not followed
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
    const reason = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new WebhookError('network', `cannot reach ${shown}: ${reason}`, error);
  }
  // Nothing of the answer is needed: release the connection without reading it.
  await response.body?.cancel().catch(() => {});
  if (response.ok) return;
  const status = response.status;
  const failure: WebhookFailure =
    status >= 300 && status < 400 ? 'redirect' : status >= 500 ? 'http_5xx' : 'http_4xx';
  throw new WebhookError(
    failure,
    `${shown} answered ${status}${failure === 'redirect' ? ' (redirects are not followed)' : ''}`,
  );
}
