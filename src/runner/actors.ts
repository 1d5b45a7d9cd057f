import { fromCallback, fromPromise } from 'xstate';
import {
  adoptCutArchive,
  fileHoldsAny,
  markSearched,
  NeedleSet,
  partOf,
  withholdArchive,
} from '../adapters/output-archive.js';
import type {
  AttachedRun,
  ContainerInspect,
  CreateContainerOptions,
  OutputHandler,
  PodmanPort,
} from '../adapters/podman.js';
import { fileStamp } from '../adapters/state-files.js';
import { LABEL_SECRETS, LIVE_CONTAINER_STATES, SECRET_MOUNT_DIR } from '../constants.js';
import { errorMessage } from '../errors.js';
import { inspectedResetByRestart } from '../host-restart.js';
import { SecretValue } from '../secret-value.js';
import { CacheVolumes } from './cache-volumes.js';
import { type CommandEnd, findCommandEnd } from './command-end.js';
import { bundleChunkName, unbundle } from './credential-bundle.js';
import { FollowedPieces, matchFollowed, pieceKey } from './followed-pieces.js';
import { ImageCache, type ImageInfo } from './image-cache.js';
import { type MaskForms, maskerOf, maskFormsYielding, type searchOf, searchOfYielding } from './mask.js';
import { isJsonDocument, MIN_MASKED_LENGTH, WORD } from './mask-forms.js';
import { indexOfSecret } from './names.js';
import { ANCHOR_LINES, ResumeAnchor } from './resume-overlap.js';
import { type OutputBlock, type OutputLine, resumeTail } from './session-log.js';
import { SessionOutput } from './session-output.js';

/**
 * The runner machine's Podman operations as actors, each over one PodmanPort: the machine says when
 * (src/machines/runner.machine.ts), these say how. `runnerActors(port, output)` is what the daemon
 * provides with `runnerMachine.provide({ actors })`; unit tests provide the same over a fake port.
 */

/** A create the machine may cut short: `abort` aborts the podman call, and the actor still reports how it ended. */
export type AbortEvent = { type: 'abort' };
/** How an abortable podman call ended. */
export type OperationEvent = { type: 'podman.done' } | { type: 'podman.failed'; error: unknown };

/** Every operation names the host it goes to; the local Podman when absent. */
export interface OnHost {
  host?: string;
}

export interface CreateSecretInput extends OnHost {
  name: string;
  value: SecretValue;
  labels: Record<string, string>;
}
export type CreateContainerInput = Omit<CreateContainerOptions, 'signal'> & OnHost;

export interface AttachInput extends OnHost {
  sessionId: string;
  container: string;
  /** Set for a new container on the local Podman: one `podman run` creates, starts and follows it. */
  run?: Omit<CreateContainerOptions, 'signal'>;
  /** The setup step's marker; an adopted container's is read back from it. */
  marker: string;
  /** Values to mask in the output; undefined withholds the output (fail closed) for the reason given. */
  mask: SecretValue[] | undefined;
  /** Why the output is withheld, when it is. */
  withheldBecause?: string;
  /** Lines agentd adds to the output before the container's own (new containers only). */
  notices: string[];
  /**
   * Set for a container an earlier daemon started, or one followed again after its host came back:
   * follow it from where its log ends, from the phase it was in.
   */
  adopted?: { phase: 'creating' | 'cloning' | 'running' };
}

export type { ImageInfo } from './image-cache.js';

/** What the setup step and the container tell the machine while it is attached. */
export type AttachEvent =
  | { type: 'setup.started' }
  | { type: 'setup.cloning' }
  /** The commit the clone checked out. */
  | { type: 'setup.commit'; commit: string }
  /** Which image the container runs, for the record (read beside the run, never holding it up). */
  | ({ type: 'container.image' } & ImageInfo)
  | { type: 'setup.running' }
  /** The setup step reported the command's end: what comes now (its output archived) is not the command's. */
  | { type: 'command.ended' }
  | {
      type: 'container.exited';
      exitCode: number;
      /** Podman's own stderr, for a container that never started. */
      stderr: string;
      /** The last output lines before the command started (masked), for a setup failure's message. */
      setupOutput: string[];
      /** The setup step's own report of how the command (or the clone) ended, when it printed one. */
      commandEnd?: CommandEnd;
      /**
       * An adopted container whose command was not seen to start, by what its log showed of the setup
       * step: `lost` when not even its first line (Podman empties a log past its bound, or the replay
       * began past it), `before-clone` when the step ended before it began the clone.
       */
      adoptedSetup?: 'lost' | 'before-clone';
      /**
       * The container exited 0, which the setup step does only after its report of how the command
       * ended, and neither the attachment nor the container's log held that report: output was lost.
       */
      outputIncomplete?: true;
    }
  | { type: 'container.lost'; error: unknown }
  /** The host does not answer (a remote connection dropped): the container may run on. */
  | { type: 'container.unreachable'; error: unknown }
  /** The host restarted while the container ran: Podman reset it (`created`, or `exited` with no finish time), the command is gone. */
  | { type: 'container.reset' };

/** What a followed container is when its host answers again: still there, reset by a restart, or gone. */
export type ContainerCheck = 'there' | 'reset' | 'gone';

/** A container that ran and whose run its host's restart ended (see host-restart.ts). */
function resetByRestart(info: ContainerInspect): boolean {
  return inspectedResetByRestart(info.State);
}

/** The codes podman run and start --attach give, besides the container's own, when they fail to read its exit. */
const podmansOwnExit = (code: number): boolean => code === 126 || code === 127;

/** Thrown where the engine confirms an end: the attachment says `container.reset`, not an exit. */
class ContainerResetError extends Error {
  override name = 'ContainerResetError';
}

export interface RemoveSecretsInput extends OnHost {
  names: string[];
}
export interface ContainerInput extends OnHost {
  container: string;
}
/** The work dir entries (request, input) that go into the container under /agentd. */
export interface CopyInInput extends ContainerInput {
  dir: string;
  entries: string[];
}
export interface CopyOutInput extends ContainerInput {
  from: string;
  to: string;
}
/** The output archive to search for the session's values before the record keeps it. */
export interface ScreenOutputInput {
  archive: string;
  /** Where to say why it was withheld, or that it was searched and found clean. */
  withheld: string;
  searched: string;
  /** The values the container was given; undefined when they are not known (the output is withheld). */
  values: SecretValue[] | undefined;
}
export interface StopInput extends ContainerInput {
  graceSeconds: number;
}

/** Where a session's output goes besides its log file. */
export interface OutputSink {
  logFile(sessionId: string): string;
  logMaxBytes: number;
  /** One line of the session's output as it arrives: masked, numbered, on its way to the log file. */
  line(sessionId: string, line: OutputLine): void;
  /** Lines that came at once (see OutputBlock); without it they go to `line` one by one. */
  block?(sessionId: string, block: OutputBlock): void;
  /**
   * Lines not kept: `withheld` (the output could not be masked, so it was not shown) or `log_full` (not
   * written to the log; followers still got them).
   */
  dropped?(sessionId: string, lines: number, reason: 'withheld' | 'log_full'): void;
}

/** How long an adopted session's log stream may trail the container's exit. */
const FOLLOW_GRACE_MS = 5000;
/** Lines of setup output kept for a setup failure's message (each cut at SETUP_LINE_CHARS). */
const SETUP_LINES = 20;
const SETUP_LINE_CHARS = 1000;

/**
 * A podman call the machine may ask to cut short (`abort`); it still reports how the call ended, so
 * the machine knows when podman has returned. With `abortable: false` the request is ignored: the
 * call runs to its end (its own deadline still ends a hung one).
 */
function operation<I>(run: (input: I, signal: AbortSignal) => Promise<unknown>, abortable = true) {
  return fromCallback<AbortEvent, I>(({ input, sendBack, receive }) => {
    const controller = new AbortController();
    let stopped = false;
    receive(() => {
      if (abortable) controller.abort();
    });
    run(input, controller.signal).then(
      () => stopped || sendBack({ type: 'podman.done' } satisfies OperationEvent),
      (error: unknown) => stopped || sendBack({ type: 'podman.failed', error } satisfies OperationEvent),
    );
    return () => {
      stopped = true;
      controller.abort();
    };
  });
}

/** The Podman of each host, by name (undefined: the local one); or one port for every host. */
export type HostPorts = PodmanPort | ((host: string | undefined) => PodmanPort);

export function runnerActors(ports: HostPorts, output: OutputSink) {
  const on = (input: OnHost): PodmanPort => (typeof ports === 'function' ? ports(input.host) : ports);
  /** `secret rm` calls under way, by host and names: a second removal of the same secrets joins one. */
  const removals = new Map<string, Promise<void>>();
  /** Which image a container of a reference runs, per host (see ImageCache). */
  const imageCaches = new Map<string, ImageCache>();
  const imagesOn = (host: string | undefined): ImageCache => {
    const cache = imageCaches.get(host ?? '') ?? new ImageCache(fileStamp);
    imageCaches.set(host ?? '', cache);
    return cache;
  };
  /** Cache volumes are made before the first container that mounts them (see CacheVolumes). */
  const cacheVolumes = new CacheVolumes();
  const ensureVolumes = cacheVolumes.ensure.bind(cacheVolumes);
  return {
    // Never cut short, not even when the actor stops: Podman 4.3 rewrites its secrets file in place,
    // and a `secret create` killed mid-write leaves it empty for every user of this host.
    createSecret: operation<CreateSecretInput>(
      (input) => on(input).createSecret(input.name, input.value.bytes(), input.labels),
      false,
    ),
    createContainer: operation<CreateContainerInput>(async ({ host, ...input }, signal) => {
      const port = on({ host });
      await ensureVolumes(port, host, input.volumes, signal);
      return port.createContainer({ ...input, signal });
    }),
    /** An adopted container's own root-only copies of its secrets: the values it really received. */
    readContainerValues: fromPromise<SecretValue[], ContainerInput>(({ input, signal }) =>
      readContainerValues(on(input), input.container, signal),
    ),
    attach: fromCallback<AbortEvent, AttachInput>(({ input, sendBack, receive }) => {
      const controller = new AbortController();
      let live = true;
      const send = (event: AttachEvent) => {
        if (live) sendBack(event);
      };
      const port = on(input);
      // Over a remote connection a failure says nothing about the container: it waits for the host.
      const prepare = async () => {
        if (input.run) await ensureVolumes(port, input.host, input.run.volumes, controller.signal);
      };
      const images = imagesOn(input.host);
      let out: SessionOutput | undefined;
      void prepare()
        .then(() =>
          attach(port, output, input, send, controller.signal, images, {
            stopped: () => !live,
            made: (made) => {
              out = made;
            },
          }),
        )
        .catch((error: unknown) =>
          send(
            error instanceof ContainerResetError
              ? { type: 'container.reset' }
              : port.remote
                ? { type: 'container.unreachable', error }
                : { type: 'container.lost', error },
          ),
        )
        // However it ended (an exit, a loss, a cancel): the session's log stays open for the next
        // attachment, and must not hold this one's output until the session ends.
        .finally(() => out?.detach());
      // The machine cuts a `podman run` short that has not started the setup step yet (a stop).
      receive(() => controller.abort());
      return () => {
        live = false;
        controller.abort();
      };
    }),
    /** Request and input files, root-owned and read-only as they are, into /agentd of the container. */
    copyIn: fromPromise<void, CopyInInput>(async ({ input, signal }) => {
      const chunks: Buffer[] = [];
      // tar is loaded by the sessions of copy hosts only (about 4 MB of RSS a daemon need not carry).
      const { create: createTar } = await import('tar');
      const stream = createTar({ cwd: input.dir, prefix: 'agentd', portable: true }, input.entries);
      for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
      await on(input).copyIntoContainer(input.container, Buffer.concat(chunks), signal);
    }),
    copyOut: fromPromise<void, CopyOutInput>(async ({ input, signal }) => {
      try {
        await on(input).copyFromContainer(input.container, input.from, input.to, signal);
      } catch (error) {
        if (signal.aborted) throw error;
        // A stop that cut the archiving short left only its part: brought back too, and kept as an
        // archive cut there (screenOutput's adoptCutArchive). None: the archive's own error is why.
        await on(input)
          .copyFromContainer(input.container, partOf(input.from), partOf(input.to), signal)
          .catch(() => {
            throw error;
          });
      }
    }),
    screenOutput: fromPromise<void, ScreenOutputInput>(({ input, signal }) =>
      screenOutputArchive(input, signal),
    ),
    checkContainer: fromPromise<ContainerCheck, ContainerInput>(async ({ input, signal }) => {
      const info = await on(input).inspectContainer(input.container, signal);
      return info === undefined ? 'gone' : resetByRestart(info) ? 'reset' : 'there';
    }),
    stopContainer: fromPromise<void, StopInput>(({ input, signal }) =>
      on(input).stopContainer(input.container, input.graceSeconds, signal),
    ),
    // Never cut short (no signal), for the reason createSecret is not: `secret rm` rewrites the same
    // secrets file. The attachment starts one while the container runs; when the container exits first,
    // that actor stops but its call goes on, and teardown's removal of the same secrets joins it
    // instead of starting a second `secret rm` (a failure: teardown tries again). Its deadline still
    // ends a hung one.
    removeSecrets: fromPromise<void, RemoveSecretsInput>(({ input }) => {
      const key = `${input.host ?? ''}\n${input.names.join('\n')}`;
      const running = removals.get(key);
      if (running) return running;
      const removal = on(input)
        .removeSecrets(input.names)
        .finally(() => removals.delete(key));
      removals.set(key, removal);
      return removal;
    }),
    removeContainer: fromPromise<void, ContainerInput>(({ input, signal }) =>
      on(input).removeContainers([input.container], signal),
    ),
  };
}

/**
 * Reads the container's output until it exits: the setup step's marker lines (hidden) become events
 * until the command starts; every other line is cut to the maximum line length, masked, numbered,
 * logged and handed to the sink (SessionOutput). While the log cannot keep up, the container's output
 * is paused.
 */
async function attach(
  port: PodmanPort,
  output: OutputSink,
  input: AttachInput,
  send: (event: AttachEvent) => void,
  signal: AbortSignal,
  images: ImageCache,
  hooks: AttachHooks = { stopped: () => false, made: () => {} },
): Promise<void> {
  const { sessionId, container, adopted } = input;
  // Dated before `podman run` makes the container: what it learns of its image holds from then on.
  const imageStamp = input.run ? images.stamp() : undefined;
  const knownImage = input.run ? images.lookup(input.run.image, imageStamp) : undefined;
  // Built in steps, the event loop free between them: long values take a second to build a masker for.
  // Their forms are made once for the session (formsOfSession): an attachment again and the output
  // archive's search derive from the same.
  const masker = input.mask === undefined ? undefined : await maskerOf(await formsOfSession(input.mask));
  // Stopped meanwhile (the session may have ended, and its log been closed with its outcome): an output
  // made now would open the log again, and nothing would ever close it.
  if (hooks.stopped()) return;
  const out = new SessionOutput(
    {
      logFile: output.logFile(sessionId),
      logMaxBytes: output.logMaxBytes,
      onLine: (line) => output.line(sessionId, line),
      ...(output.block && { onBlock: (block: OutputBlock) => output.block?.(sessionId, block) }),
      onMissed: (lines) => output.dropped?.(sessionId, lines, 'log_full'),
    },
    masker,
  );
  hooks.made(out);
  const setupOutput: string[] = [];
  /** The agent's command runs: no more marker lines are read, but for the setup step's last. */
  let commandStarted = false;
  let commandEnd: CommandEnd | undefined;
  /** The setup step announced itself: what comes on stderr from now on is the command's, not podman's. */
  let containerStarted = adopted !== undefined;
  /** Markers of the setup step this attachment read (for an adopted container: what its log still holds). */
  const setupSeen = { started: false, cloning: false };
  /** A note that goes in before the next output handed on, if any comes. */
  let noteBefore: string | undefined;
  /** Output (a line, or a part of a longer one): masked, logged, streamed, kept for a setup failure. */
  const write = (raw: string, cont: boolean, stream: 'stdout' | 'stderr' = 'stdout', masked = false) => {
    if (noteBefore !== undefined) {
      out.notice(noteBefore);
      noteBefore = undefined;
    }
    const line = out.write(raw, cont, stream, masked);
    if (line === undefined && !cont) output.dropped?.(sessionId, 1, 'withheld');
    if (line === undefined || commandStarted) return;
    setupOutput.push(line.length > SETUP_LINE_CHARS ? `${line.slice(0, SETUP_LINE_CHARS)}...` : line);
    if (setupOutput.length > SETUP_LINES) setupOutput.shift();
  };
  /** What a whole line is: the setup step's report (and output before it), a marker, or output. */
  const read = (
    marker: string,
    raw: string,
    cont: boolean,
  ): { kind: 'end'; before: string } | { kind: 'marker' | 'line' } => {
    const ended = findCommandEnd(marker, raw);
    if (ended !== undefined) {
      commandEnd = ended.end;
      if (commandStarted) send({ type: 'command.ended' });
      return { kind: 'end', before: ended.before };
    }
    // A marker is a line of its own: never the rest of a longer line.
    if (cont || commandStarted || marker === '' || !raw.startsWith(`${marker} `)) return { kind: 'line' };
    const what = raw.slice(marker.length + 1);
    // Read again from the log after an attachment that lost the rest: the start was told already.
    if (what === 'started' && setupSeen.started) return { kind: 'marker' };
    if (what === 'started') {
      setupSeen.started = true;
      containerStarted = true;
      send({ type: 'setup.started' });
      // The container exists now (`podman run` made it): which image it runs. Known when no image
      // changed since a container of the same reference was inspected; otherwise read beside the run
      // (a failure costs the record its image digest, nothing else).
      if (knownImage) send({ type: 'container.image', ...knownImage });
      else if (!adopted)
        port.inspectContainer(container, signal).then(
          (info) => {
            send(imageOf(info));
            if (info && input.run) images.learn(input.run.image, imageStamp, info);
          },
          () => {},
        );
    } else if (what === 'phase cloning') {
      setupSeen.cloning = true;
      send({ type: 'setup.cloning' });
    } else if (what.startsWith('commit ')) {
      const commit = what.slice('commit '.length);
      if (/^[0-9a-f]{40,64}$/.test(commit)) send({ type: 'setup.commit', commit });
    } else if (what === 'phase running') {
      commandStarted = true;
      send({ type: 'setup.running' });
    }
    return { kind: 'marker' };
  };
  const exited = async (exitCode: number, stderr: string) => {
    if (out.withheldLines > 0) out.notice(`[agentd: ${out.withheldLines} line(s) of output withheld]`);
    // Everything is in the log before the outcome; output that could not be written (a full state
    // dir) is noted there as soon as it can be.
    await out.close();
    send({
      type: 'container.exited',
      exitCode,
      stderr,
      setupOutput,
      ...(commandEnd === undefined ? {} : { commandEnd }),
      // The setup step exits 0 only after its report: without one, its output was lost on the way.
      ...(adopted === undefined && commandEnd === undefined && exitCode === 0
        ? { outputIncomplete: true }
        : {}),
      ...(adopted === undefined || commandStarted || setupSeen.cloning
        ? {}
        : { adoptedSetup: setupSeen.started ? ('before-clone' as const) : ('lost' as const) }),
    });
  };

  /**
   * The setup step's report of the command's end did not come, though the container may have run the
   * step (a start podman itself failed, 125 to 127 before the step's first line, has no log to read).
   */
  const reportLost = (exitCode: number) =>
    commandEnd === undefined && !signal.aborted && (containerStarted || exitCode < 125 || exitCode > 127);
  /** Set when the attachment ended with its container's exit but without the report: the log is read once. */
  let exitedWith: { exitCode: number; stderr: string } | undefined;
  if (!adopted) {
    for (const line of input.notices) out.notice(`agentd: ${line}`);
    out.setMarker(input.marker);
    const markerBytes = Buffer.from(input.marker);
    const reader = out.reader(
      (text, end, cont, stream, masked) => {
        if (stream === 'stderr') {
          // The command's own stderr; before the container runs, podman's messages (kept for the error).
          if (containerStarted) write(text, cont, 'stderr', masked);
          return;
        }
        if (!end) {
          write(text, cont, 'stdout', masked);
          return;
        }
        const what = read(input.marker, text, cont);
        if (what.kind === 'line') write(text, cont, 'stdout', masked);
        else if (what.kind === 'end' && what.before !== '') write(what.before, cont, 'stdout', masked);
      },
      // Whole lines at once while the command runs and none of them is the setup step's: its report
      // and the setup output kept for an error come line by line.
      (bytes, lines, stream) =>
        commandStarted &&
        (markerBytes.length === 0 || bytes.indexOf(markerBytes) === -1) &&
        out.writeBlock(bytes, lines, stream),
    );
    const run = input.run
      ? port.runAttached(input.run, reader.handler, signal)
      : port.startAttached(container, reader.handler, signal);
    reader.bind(run);
    const ended = await run.exitCode;
    let exitCode: number | undefined = ended;
    if (
      !port.remote &&
      podmansOwnExit(ended) &&
      commandEnd === undefined &&
      containerStarted &&
      !signal.aborted
    ) {
      // 126 and 127 after the setup step started without its report may be podman's own: it could not
      // read how the container ended (its conmon, which records the exit, was killed: "getting exit code
      // of container ... from DB: no such exit code (container in state running)"). The engine says
      // whether the container exited with that code; the command's end is not known otherwise.
      const info = await port.inspectContainer(container, signal).catch(() => undefined);
      const status = info?.State.Status;
      if (
        info !== undefined &&
        status !== undefined &&
        (LIVE_CONTAINER_STATES.has(status) || info.State.ExitCode !== ended)
      ) {
        await out.close();
        const listed = LIVE_CONTAINER_STATES.has(status)
          ? status
          : `${status} with code ${info.State.ExitCode}`;
        send({
          type: 'container.lost',
          error: new Error(
            `${input.run ? 'podman run' : 'podman start --attach'} exited ${ended} without the container's exit: Podman still lists container ${container} as ${listed} (the conmon process that records its exit may have been killed), so how the command ended is not known`,
          ),
        });
        return;
      }
    }
    if (!port.remote && ended === -1 && commandEnd === undefined && containerStarted && !signal.aborted) {
      // podman itself was killed (by a signal: no exit code), not the container, which --sig-proxy=false
      // keeps running: the engine says whether it exited. One still running is followed from where the
      // log ends, as an adopted one is; an exited one's code is its own.
      const info = await port.inspectContainer(container, signal).catch(() => undefined);
      const status = info?.State.Status ?? '';
      if (LIVE_CONTAINER_STATES.has(status)) exitCode = undefined;
      else if (info !== undefined && (status === 'exited' || status === 'stopped'))
        exitCode = info.State.ExitCode;
    }
    if (port.remote) {
      // Over a remote connection the stream also ends when the connection drops, and podman then says
      // 0: the engine says whether the container exited. A host that does not answer throws (unreachable).
      const info = await port.inspectContainer(container, signal);
      if (info === undefined) {
        await out.close();
        send({ type: 'container.lost', error: new Error(`container ${container} is gone from its host`) });
        return;
      }
      if (resetByRestart(info)) {
        await out.close();
        throw new ContainerResetError(`container ${container} was reset by its host's restart`);
      }
      const exitedForReal = info.State.Status === 'exited' || info.State.Status === 'stopped';
      // Still running: the attachment dropped, not the container; it is followed from where the log ends.
      exitCode = LIVE_CONTAINER_STATES.has(info.State.Status)
        ? undefined
        : exitedForReal
          ? info.State.ExitCode
          : ended;
    }
    if (exitCode !== undefined) {
      if (!reportLost(exitCode)) {
        await exited(exitCode, run.stderr());
        return;
      }
      // Podman's attachment can end before it has handed on all its container printed (seen once in
      // thousands of short sessions under load: the setup step's first line, then nothing, exit 0):
      // the exited container's log is read once, from where the output handed on stands.
      exitedWith = { exitCode, stderr: run.stderr() };
    }
  }

  // Output already handed on stays: replay the container's output and skip the lines that were; when
  // that count is not known (the bounded log was trimmed or has a gap, or Podman's own copy may have
  // been emptied), find where the log left off in Podman's copy by the log's last lines instead (never
  // by time: the host's clock and the daemon's need not agree). Read before the withheld notice goes
  // in: the resume point is where the container's output stands, never agentd's own note, or the
  // replayed markers that tell a phase the record had not caught up with would be lost.
  const counted = out.log.writtenLines();
  const lastWrite = out.log.lastWrite()?.toISOString();
  if (input.withheldBecause !== undefined) out.notice(input.withheldBecause);
  const info = await port.inspectContainer(container, signal);
  if (adopted) send(imageOf(info));
  const marker =
    (info?.Config.Env ?? []).find((e) => e.startsWith('AGENTD_SETUP_MARKER='))?.slice(20) ?? input.marker;
  out.setMarker(marker);
  // The container ran while no one watched it (no daemon, or its host's connection dropped): however
  // little the log holds, Podman may have emptied its copy meanwhile, and counting from the copy's start
  // would then skip lines never handed on. The copy is Podman's first while it begins with the setup
  // step's first line (an empty one, while the log holds none either); one that cannot be read is not
  // counted from.
  const start =
    counted === undefined ? undefined : await copyStart(port, container, `${marker} started`, signal);
  const emptied =
    start === 'other' || (start === 'empty' && (counted?.stdout ?? 0) + (counted?.stderr ?? 0) > 0);
  const byCount = !emptied && start !== 'unknown' && counted !== undefined;
  // By content: what the log holds of the copy is skipped by count as well, once found. While the
  // output is withheld nothing can be compared (the log's lines are masked, the copy's are not): from
  // the last line's time, only counted.
  const anchor =
    byCount || lastWrite === undefined || out.withholding
      ? undefined
      : await anchorIn(port, container, out, marker, signal);
  if (anchor?.missing || (emptied && anchor === undefined)) out.notice(emptied ? COPY_EMPTIED : NOT_FOUND);
  const skip = byCount ? counted : anchor?.skip;
  const skipFromStart = skip === undefined ? undefined : { ...skip };
  const since = skip === undefined && out.withholding ? lastWrite : undefined;
  // Podman dated every line of an exited container before its exit: a replay from the log's last line
  // gives none when that is after the exit. Its reader then read on after the exit (an earlier
  // adoption, or a daemon far behind) and stopped before it was done.
  const finishedAt = Date.parse(info?.State.FinishedAt ?? '');
  if (
    since !== undefined &&
    info?.State.Running === false &&
    finishedAt > 0 &&
    Date.parse(since) - RESUME_MARGIN_MS > finishedAt
  )
    out.notice(READ_AFTER_EXIT);
  // Without a replay counted from the start, the markers are not seen again.
  commandStarted = !byCount && (adopted?.phase ?? (commandStarted ? 'running' : '')) === 'running';
  /**
   * The setup step's markers a replay not counted from the start gives again once the command runs:
   * stale, not output (a whole line's start only: a long line's last piece may begin with one).
   */
  const staleMarker = (text: string, cont: boolean) =>
    !byCount &&
    !cont &&
    commandStarted &&
    marker !== '' &&
    text.startsWith(`${marker} `) &&
    findCommandEnd(marker, text) === undefined;
  /** Inside a line longer than the maximum that is being skipped, per stream. */
  const skipping = { stdout: false, stderr: false };
  const toSkip = (stream: 'stdout' | 'stderr') => skip !== undefined && skip[stream] > 0;
  const replayed = (text: string, cont: boolean, stream: 'stdout' | 'stderr', masked: boolean) => {
    if (skip !== undefined && skip[stream] > 0) skip[stream]--;
    else write(text, cont, stream, masked);
  };
  // Each stream is replayed and skipped on its own: Podman replays them in its own order.
  const reader = out.reader((text, end, cont, stream, masked) => {
    if (!end) {
      if (skipping[stream] || toSkip(stream)) skipping[stream] = true;
      else write(text, cont, stream, masked);
      return;
    }
    if (skipping[stream]) {
      // The end of a skipped line; it may still carry the setup step's report.
      skipping[stream] = false;
      if (skip !== undefined) skip[stream]--;
      const ended = stream === 'stdout' ? findCommandEnd(marker, text) : undefined;
      if (ended !== undefined) commandEnd = ended.end;
      return;
    }
    if (stream === 'stderr') {
      replayed(text, cont, 'stderr', masked);
      return;
    }
    if (staleMarker(text, cont)) return;
    // Replayed markers only move the phase forward; the machine ignores those it is past.
    const what = read(marker, text, cont);
    if (what.kind === 'line') replayed(text, cont, 'stdout', masked);
    // The output before the report was handed on already, unless the log was cut short there.
    else if (what.kind === 'end' && what.before !== '') replayed(what.before, cont, 'stdout', masked);
  });
  if (exitedWith !== undefined) {
    // The container has exited: its log is read once, not followed, and its exit code is known.
    noteBefore = ATTACHMENT_LOST;
    const copy = port.readLogs(container, since, reader.handler, signal);
    reader.bind(copy);
    const readCode = await copy.exitCode.catch(() => -1);
    noteBefore = undefined;
    if (readCode !== 0 && !signal.aborted) out.notice(COPY_UNREAD);
    await exited(exitedWith.exitCode, exitedWith.stderr);
    return;
  }
  // What the follow handed on, per stream (see catchUp).
  const seen = { stdout: new FollowedPieces(), stderr: new FollowedPieces() };
  const followed = port.followLogs(
    container,
    since,
    (text, end, stream) => {
      // Whether the reader skipped the piece (one the log holds, it takes it): the catch-up hands on
      // again what it skipped wrongly, after lines the stream left out.
      const before = skip?.[stream] ?? 0;
      const wasSkipping = skipping[stream];
      reader.handler(text, end, stream);
      seen[stream].add(text, end, !(wasSkipping || skipping[stream] || (skip?.[stream] ?? 0) < before));
    },
    signal,
  );
  reader.bind(followed);
  // A broken log stream is not the end of the container: `wait` says when that is.
  let streamDone = false;
  const streamEnded = followed.exitCode.then(
    () => {
      streamDone = true;
    },
    () => -1,
  );
  let exitCode = await port.wait(container, signal);
  if (port.remote) {
    // As with the attachment: over a remote connection, the engine confirms the exit.
    const after = await port.inspectContainer(container, signal);
    if (after === undefined || LIVE_CONTAINER_STATES.has(after.State.Status)) {
      await out.close();
      throw new Error(`the connection to the host of container ${container} dropped while waiting for it`);
    }
    if (resetByRestart(after)) {
      await out.close();
      throw new ContainerResetError(`container ${container} was reset by its host's restart`);
    }
    exitCode = after.State.ExitCode;
  }
  // The log stream ends with the container; do not wait for it forever.
  await Promise.race([streamEnded, new Promise((resolve) => setTimeout(resolve, FOLLOW_GRACE_MS).unref())]);
  // Podman 4 ends a follow at the container's exit even when it is behind (a reader that was paused,
  // a log that grew fast), leaving out lines as it stops, the setup step's report or not: what the
  // follow did not hand on is read once more.
  if (streamDone && !signal.aborted) {
    await catchUp(
      port,
      container,
      since,
      seen,
      {
        handler: reader.handler,
        bind: reader.bind,
        notice: (text) => out.notice(text),
        restart: (first) => {
          // The copy begins as it did when the count was taken, or was emptied since (all is newer).
          const fromStart =
            anchor === undefined ? first.line === `${marker} started` : first.key === anchor.firstKey;
          if (skip !== undefined && skipFromStart !== undefined)
            Object.assign(skip, fromStart ? skipFromStart : { stdout: 0, stderr: 0 });
          skipping.stdout = false;
          skipping.stderr = false;
        },
        skips: (stream) => skipping[stream] || toSkip(stream),
        commandStarted: () => commandStarted,
        marker,
      },
      signal,
    );
  }
  await exited(exitCode, '');
}

/** How the catch-up hands pieces to the attachment's reader. */
interface Replay {
  handler: OutputHandler;
  bind: (run: AttachedRun) => void;
  notice: (text: string) => void;
  /**
   * The copy is given to the reader again: it skips again, from the start, what the log holds; or,
   * when the copy no longer begins as it did (`first`: its first stdout piece, and that piece's
   * pieceKey), nothing (all it holds is newer than the log).
   */
  restart: (first: { line: string | undefined; key: number | undefined }) => void;
  /** The reader would skip the next piece of the stream (the log holds it). */
  skips: (stream: 'stdout' | 'stderr') => boolean;
  /** The setup step's marker. */
  marker: string;
  /** The reader takes the setup step's markers as output from now on. */
  commandStarted: () => boolean;
}

/**
 * Reads the container's output again (without following, from the follow's own starting point) and
 * hands on what the follow did not write, per stream: each piece of Podman's copy the follow handed
 * on is found (followed-pieces.ts), never by count (the follow leaves lines out as it stops), and the
 * copy is given to the reader again in its order, but for the pieces the follow had it write: the
 * reader skips, by its count from the start, what the log holds (also what it skipped wrongly when the
 * follow left out lines before it), and writes the rest, those before the follow's last written piece
 * after a note. The setup step's markers are not given again (read when they came, or stale now), but
 * its report is. A copy that holds nothing the follow handed on was emptied past it (the copy is
 * bounded): all of it is newer, and comes after a note.
 */
async function catchUp(
  port: PodmanPort,
  container: string,
  since: string | undefined,
  seen: Record<'stdout' | 'stderr', FollowedPieces>,
  replay: Replay,
  signal: AbortSignal,
): Promise<void> {
  const streams = ['stdout', 'stderr'] as const;
  const read = async (onLine: OutputHandler) => {
    const run = port.readLogs(container, since, onLine, signal);
    replay.bind(run);
    return await run.exitCode.catch(() => -1);
  };
  // Once to find what the follow handed on, once more to hand on the rest: Podman's copy is not
  // kept in the daemon's memory, only a fingerprint of each of its pieces.
  const copy = { stdout: [] as number[], stderr: [] as number[] };
  /** 1 where a piece ends its line. */
  const ends = { stdout: [] as number[], stderr: [] as number[] };
  let firstLine: string | undefined;
  const found = await read((text, end, stream) => {
    if (stream === 'stdout' && firstLine === undefined) firstLine = text;
    copy[stream].push(pieceKey(text, end));
    ends[stream].push(end ? 1 : 0);
  });
  if (signal.aborted) return;
  if (found !== 0) {
    replay.notice(COPY_UNREAD);
    return;
  }
  let emptied = false;
  let missed = 0;
  const written: Record<'stdout' | 'stderr', Uint8Array> = {
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
  };
  const lastWritten = { stdout: -1, stderr: -1 };
  for (const stream of streams) {
    const followed = seen[stream].kept();
    const wrote = seen[stream].keptWritten();
    const match = matchFollowed(copy[stream], followed);
    const marks = new Uint8Array(copy[stream].length);
    for (let k = 0; k < followed.length; k++) {
      const at = match.placed[k] ?? -1;
      if (at === -1 || wrote[k] !== 1) continue;
      marks[at] = 1;
      if (at > lastWritten[stream]) lastWritten[stream] = at;
    }
    // A line is given again whole when any piece of it was not written (a line the follow stopped
    // inside comes again whole, never as its rest glued to another).
    for (let from = 0; from < marks.length; ) {
      let to = from;
      while (to < marks.length - 1 && ends[stream][to] !== 1) to++;
      let whole = true;
      for (let i = from; i <= to; i++) if (marks[i] !== 1) whole = false;
      if (!whole) marks.fill(0, from, to + 1);
      from = to + 1;
    }
    written[stream] = marks;
    // A single piece not found may be a line the follow stopped inside, not a sign of an emptied copy.
    if (match.matched === 0 && copy[stream].length > 0 && followed.length > 1) emptied = true;
    missed += copy[stream].length - match.matched;
  }
  // The follow handed on all the copy holds, in order: the reader has it all.
  if (missed === 0) return;
  if (emptied) replay.notice(COPY_EMPTIED);
  // A line the follow stopped inside is ended here: what comes now is not its rest.
  for (const stream of streams) if (seen[stream].open) replay.handler('', true, stream);
  // Emptied since the follow began: the copy begins after what the log holds.
  replay.restart({ line: firstLine, key: copy.stdout[0] });
  const markerStart = `${replay.marker} `;
  const at = { stdout: 0, stderr: 0 };
  const lineStart = { stdout: true, stderr: true };
  let noted = false;
  const rest = await read((text, end, stream) => {
    const i = at[stream]++;
    const starts = lineStart[stream];
    lineStart[stream] = end;
    if (written[stream][i] === 1) return;
    // Markers are read while the command has not started (they move the phase on); after, they are
    // stale, not output.
    if (
      stream === 'stdout' &&
      starts &&
      replay.commandStarted() &&
      replay.marker !== '' &&
      text.startsWith(markerStart) &&
      findCommandEnd(replay.marker, text) === undefined
    )
      return;
    if (!noted && i < lastWritten[stream] && !replay.skips(stream)) {
      noted = true;
      replay.notice(LEFT_OUT);
    }
    replay.handler(text, end, stream);
  });
  if (rest !== 0 && !signal.aborted) replay.notice(COPY_UNREAD);
}

/**
 * How long after a withheld log's last line (only counted, from that line's time) a container may have
 * exited before the log is taken for one written after the exit.
 */
const RESUME_MARGIN_MS = 2000;

/** What the log holds of Podman's copy (see ResumeAnchor), found by reading the copy once. */
interface Anchored {
  /** The copy's lines per stream the log holds (the rest are newer). */
  skip: { stdout: number; stderr: number };
  /** Where the log left off was not found on a stream: some output may be missing or repeated. */
  missing: boolean;
  /** pieceKey of the copy's first stdout piece (whether it was emptied since, see catchUp). */
  firstKey: number | undefined;
}

/**
 * Reads Podman's whole copy of the container's output (it is bounded) once, each line as the log would
 * hold it (masked), and finds per stream where the log left off by its last lines (ResumeAnchor). The
 * lines are counted as the replay's reader counts what it skips: the setup step's markers are not
 * output, its report's line is the output before it. A stream whose place is not found is replayed
 * whole (its lines in the copy may repeat some the log holds): `missing` says so, when the log holds
 * lines of it or the copy does. A copy that cannot be read is not found either.
 */
async function anchorIn(
  port: PodmanPort,
  container: string,
  out: SessionOutput,
  marker: string,
  signal: AbortSignal,
): Promise<Anchored> {
  // Lines appended but not written yet are in the log once flushed (an attachment that dropped).
  await out.log.flushed();
  const tail = resumeTail(out.log.path, ANCHOR_LINES);
  const anchors = { stdout: new ResumeAnchor(tail.stdout), stderr: new ResumeAnchor(tail.stderr) };
  const shown = (text: string, masked: boolean) => out.shown(text, masked) ?? text;
  const reader = out.reader((text, end, cont, stream, masked) => {
    const anchor = anchors[stream];
    if (!end) anchor.piece(shown(text, masked));
    else if (stream === 'stderr' || cont || marker === '') anchor.line(shown(text, masked));
    else {
      const ended = findCommandEnd(marker, text);
      if (ended !== undefined) {
        if (ended.before !== '') anchor.line(shown(ended.before, masked));
      } else if (!text.startsWith(`${marker} `)) anchor.line(shown(text, masked));
    }
  });
  let firstKey: number | undefined;
  let code: number;
  try {
    const run = port.readLogs(
      container,
      undefined,
      (text, end, stream) => {
        if (stream === 'stdout' && firstKey === undefined) firstKey = pieceKey(text, end);
        reader.handler(text, end, stream);
      },
      signal,
    );
    code = await run.exitCode.catch(() => -1);
  } catch {
    code = -1;
  }
  const skip = { stdout: 0, stderr: 0 };
  let missing = false;
  for (const stream of ['stdout', 'stderr'] as const) {
    const { lines, through } = anchors[stream].found();
    if (code === 0 && through !== undefined) skip[stream] = through;
    else if (tail[stream].length > 0 || lines > 0 || code !== 0) missing = true;
  }
  return { skip, missing, firstKey };
}

const NOT_FOUND =
  "[agentd: some output may be missing or repeated: where this log left off was not found in Podman's copy of the container's output (emptied or unreadable), so all of the copy follows]";
const LEFT_OUT = "[agentd: Podman's log stream left out some lines: they follow, out of order]";
const ATTACHMENT_LOST =
  "[agentd: Podman's attachment did not hand on all the container printed: the rest was read from Podman's log of it]";
const COPY_UNREAD = "[agentd: some output may be missing: Podman's copy could not be read once more]";
const COPY_EMPTIED = "[agentd: some output is missing: Podman's own copy was emptied before it was read]";
const READ_AFTER_EXIT =
  '[agentd: some output may be missing: this log was written after the container exited, by a reader that stopped before it was done]';

/** What the attach actor tells its attachment, and is told of it. */
interface AttachHooks {
  /** The actor was stopped (the machine left `following`): nobody hears of the attachment any more. */
  stopped(): boolean;
  /** The attachment's output, once made: detached however the attachment ends. */
  made(out: SessionOutput): void;
}

/**
 * How Podman's copy of a container's output begins (read up to its first stdout line only): with
 * `first`, with something else (or only stderr), with nothing, or unknown (it could not be read).
 */
async function copyStart(
  port: PodmanPort,
  container: string,
  first: string,
  signal: AbortSignal,
): Promise<'first' | 'other' | 'empty' | 'unknown'> {
  if (signal.aborted) return 'unknown';
  const enough = new AbortController();
  const stop = () => enough.abort();
  signal.addEventListener('abort', stop, { once: true });
  let line: string | undefined;
  let stderr = false;
  let exitCode: number;
  try {
    const run = port.readLogs(
      container,
      undefined,
      (text, _end, stream) => {
        // The two streams come through sockets of their own: the first line read may be stderr's.
        if (stream === 'stderr') stderr = true;
        if (stream !== 'stdout' || line !== undefined) return;
        line = text;
        enough.abort();
      },
      enough.signal,
    );
    exitCode = await run.exitCode.catch(() => -1);
  } catch {
    return 'unknown';
  } finally {
    signal.removeEventListener('abort', stop);
  }
  const seen = line as string | undefined;
  if (seen !== undefined) return seen === first ? 'first' : 'other';
  if (exitCode !== 0 || signal.aborted) return 'unknown';
  return stderr ? 'other' : 'empty';
}

function imageOf(info: ContainerInspect | undefined): AttachEvent {
  return {
    type: 'container.image',
    ...(info?.Image === undefined || info.Image === '' ? {} : { id: info.Image }),
    ...(info?.ImageDigest === undefined || info.ImageDigest === '' ? {} : { digest: info.ImageDigest }),
  };
}

/**
 * What an output archive is searched for: the forms the output is masked for, and each value's own
 * bytes; of a multi-line value's lines, not those any file of its kind has (a PEM key's armour, a line
 * without four letters or digits in a row), and none of a JSON document's (its strings of 16 characters
 * and more are searched for as parts: a service account file's `"type": "service_account",` is in every
 * other one); and only forms that stand for a value whole (Masker.identifying: not a line's share of
 * its wrapped base64, which values of a kind share, every HS256 JWT the first: the lines of wrapped
 * base64 are searched joined instead). One found withholds the whole output, where a line masked costs
 * nothing. The masker's readings (without those lines) find what only a reading of a line shows, as the
 * output's masking does (escape sequences, percent escapes, `printf %q`).
 */
export async function outputSearch(
  values: readonly SecretValue[],
): Promise<{ needles: NeedleSet; masking: ReturnType<typeof searchOf> }> {
  const raw = values.map((value) => value.bytes());
  const lines = new Set<string>();
  for (const bytes of raw) {
    const text = bytes.toString('utf8');
    const split = text.split(/\r\n|\r|\n/);
    if (split.length < 2) continue;
    const json = isJsonDocument(text);
    for (const line of split) if (json || PEM_ARMOUR.test(line) || !WORD.test(line)) lines.add(line);
  }
  // The forms the session's output was masked for, made once for the session (in steps, as for its
  // masker), without those lines: what createMasker(raw, { except: lines }) would build again.
  const masking = await searchOfYielding(await formsOfSession(values), lines);
  // Encoded in steps: ten values of 128 KB of random bytes have 250 million characters of identifying
  // forms, seconds of the daemon's one thread at once.
  const needles: Buffer[] = [];
  let encoded = 0;
  for (const form of masking.identifying) {
    needles.push(Buffer.from(form, 'utf8'));
    encoded += form.length;
    if (encoded >= ENCODED_PER_STEP) {
      encoded = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  for (const bytes of raw) if (bytes.length >= MIN_MASKED_LENGTH) needles.push(bytes);
  return { needles: await NeedleSet.inSteps(needles), masking };
}

/** Characters of identifying forms outputSearch encodes between two turns of the event loop. */
const ENCODED_PER_STEP = 4 * 1024 * 1024;

/**
 * The forms of a session's values (maskFormsYielding), made once for the session: the masker of each
 * of its attachments and its output archive's search derive from them, where each made them again
 * (ten values of 128 KB: seconds of the daemon's one thread, twice). Kept under the first value with
 * the values they are of (values are never changed: SecretValue holds its own copy), so other values,
 * an adopted session's read back, are not taken for them; forgotten after the archive's search, the
 * session's last use, or with the values (a finished session's are let go).
 */
const sessionForms = new WeakMap<
  SecretValue,
  { values: readonly SecretValue[]; forms: Promise<MaskForms> }
>();

function sessionFormsEntry(values: readonly SecretValue[]) {
  const first = values[0];
  const entry = first === undefined ? undefined : sessionForms.get(first);
  const same =
    entry?.values.length === values.length && entry.values.every((value, i) => value === values[i]);
  return same ? entry : undefined;
}

export function formsOfSession(values: readonly SecretValue[]): Promise<MaskForms> {
  const known = sessionFormsEntry(values);
  if (known) return known.forms;
  const forms = maskFormsYielding(values.map((value) => value.bytes()));
  const first = values[0];
  if (first !== undefined) {
    const entry = { values: [...values], forms };
    sessionForms.set(first, entry);
    // One that failed is made again at the next use.
    forms.catch(() => {
      if (sessionForms.get(first) === entry) sessionForms.delete(first);
    });
  }
  return forms;
}

function forgetSessionForms(values: readonly SecretValue[]): void {
  const first = values[0];
  if (first !== undefined && sessionFormsEntry(values)) sessionForms.delete(first);
}

/** A PEM block's first or last line. */
const PEM_ARMOUR = /^-----(BEGIN|END) [A-Z0-9 ]+-----$/;

/**
 * A container's own root-only copies of its secrets: the values it really received (an adopted session's,
 * to mask its output and search its output archive). An exited one's are read from the copies Podman keeps
 * on this machine until it is removed; none (a remote host's exited container) fails.
 */
export async function readContainerValues(
  port: PodmanPort,
  container: string,
  signal?: AbortSignal,
): Promise<SecretValue[]> {
  let files: Map<string, Buffer>;
  try {
    files = await port.readContainerFiles(container, SECRET_MOUNT_DIR, signal);
  } catch (error) {
    // One given no secret (agentd's label says how many, since the label exists) holds no value to
    // mask. An exited one cannot be read through exec: on this machine, Podman's own copies of its
    // secrets are read instead (it keeps them until the container is removed).
    const info = await port.inspectContainer(container, signal).catch(() => undefined);
    if (info?.Config.Labels?.[LABEL_SECRETS] === '0') return [];
    if (info === undefined || info.State.Running || port.remote) throw error;
    files = new Map();
    // By secret name: each is the chunk of the bundle its name numbers (the file exec would read).
    for (const [secret, bytes] of await port.readSecretCopies(info)) {
      const index = indexOfSecret(secret);
      const name = index === undefined ? secret : bundleChunkName(index);
      files.get(name)?.fill(0);
      files.set(name, bytes);
    }
    // Fewer copies than it was given would mask too little: fail closed.
    const given = info.Config.Labels?.[LABEL_SECRETS];
    if (files.size === 0 || (given !== undefined && files.size !== Number(given))) {
      for (const bytes of files.values()) bytes.fill(0);
      throw new Error(
        `Podman holds ${files.size} copies of the secrets of container ${container}, which was given ${given ?? 'some'}`,
      );
    }
  }
  let split: Buffer[] = [];
  try {
    // One bundle holds them all: split into the values the command got (credential-bundle.ts).
    split = unbundle(files);
    return split.map((bytes) => new SecretValue(bytes));
  } finally {
    // SecretValue keeps its own copy: no other is left behind.
    for (const bytes of [...split, ...files.values()]) bytes.fill(0);
  }
}

/**
 * The record keeps what the agent left in /agentd/out, which is its own to write: a credential value
 * in a file (or a file's name) would be kept, and exported, as it is. The archive is searched for
 * the values (outputSearch); one found, or values not known (an adopted session whose values could
 * not be read back), and the archive is removed with a note that says why.
 */
export async function screenOutputArchive(input: ScreenOutputInput, signal: AbortSignal): Promise<void> {
  const { archive, withheld, searched, values } = input;
  let found: Awaited<ReturnType<typeof fileHoldsAny>>;
  try {
    // A stop that cut the archiving short left its part: searched and kept as an archive cut there.
    adoptCutArchive(archive);
  } catch {
    // Not taken: the record says the output is missing, as it did.
  }
  try {
    // The session's last use of its values' forms: let go, whatever the search finds.
    const search = outputSearch(values ?? []).finally(() => forgetSessionForms(values ?? []));
    const { needles, masking } = await search;
    found = await fileHoldsAny(archive, needles, signal, masking);
  } catch (error) {
    // Stopped mid-search: no mark, so the seal withholds it (nothing is decided here).
    if (signal.aborted) throw error;
    withholdArchive(
      archive,
      withheld,
      `withheld: it could not be searched for credential values (${errorMessage(error)})`,
    );
    return;
  }
  if (found === undefined) return;
  if (values === undefined) {
    withholdArchive(
      archive,
      withheld,
      'withheld: the credential values the container was given could not be read back after a daemon restart, so it could not be searched for them',
    );
  } else if (found.held) {
    withholdArchive(
      archive,
      withheld,
      'withheld: a file in /agentd/out held a credential value the session was given (in its content or its name)',
    );
  } else {
    try {
      markSearched(searched, found.identity);
    } catch (error) {
      // Unmarked, the seal withholds it; say why, if the state dir takes that.
      withholdArchive(archive, withheld, `withheld: its search could not be noted (${errorMessage(error)})`);
    }
  }
}
