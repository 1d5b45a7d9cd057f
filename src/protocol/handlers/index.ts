import type { Handler } from '../context.js';
import type { Request } from '../messages.js';
import { agents } from './agents.js';
import { cancel } from './cancel.js';
import { event } from './event.js';
import { hello } from './hello.js';
import { history } from './history.js';
import { drain, hosts, undrain } from './hosts.js';
import { logs } from './logs.js';
import { reload } from './reload.js';
import { show } from './show.js';
import { status } from './status.js';
import { subscribe } from './subscribe.js';
import { trigger } from './trigger.js';
import { wait } from './wait.js';

/** One handler per message type. */
export const handlers: { [T in Request['type']]: Handler<T> } = {
  hello,
  trigger,
  status,
  cancel,
  logs,
  event,
  subscribe,
  reload,
  hosts,
  drain,
  undrain,
  show,
  wait,
  history,
  agents,
};
