import {
  type ActorRefFrom,
  and,
  assign,
  fromCallback,
  fromPromise,
  not,
  raise,
  sendTo,
  setup,
  stateIn,
} from 'xstate';
import { defaultResources } from '../config/resources.js';
import { durationSetting, MAX_DURATION_MS } from '../duration.js';
import type {
  AbortEvent,
  AttachEvent,
  AttachInput,
  ContainerCheck,
  ContainerInput,
  CopyInInput,
  CopyOutInput,
  CreateContainerInput,
  CreateSecretInput,
  ImageInfo,
  OperationEvent,
  RemoveSecretsInput,
  ScreenOutputInput,
  StopInput,
} from '../runner/actors.js';
import { outOfMemoryReason } from '../runner/command-end.js';
import type { SecretValue } from '../secret-value.js';
import type { AssembledSession } from '../sessions/assemble.js';
import {
  commandExited,
  failed,
  hostLost,
  outputIncomplete,
  type RunFate,
  type StopReason,
  setupFailed,
  setupUnknown,
  signalOfExit,
  startFailed,
  stopped,
} from '../sessions/run-outcome.js';
import { OUTPUT_COPY_SECONDS, planRun, type RunnerSettings, type RunPlan } from '../sessions/run-plan.js';
import type { Phase, RunResult } from '../sessions/types.js';

export type { RunnerSettings };

/** A running container of this instance that a new daemon supervises to the end. */
export interface AdoptedSession {
  container: string;
  phase: 'cloning' | 'running';
  remainingMs?: number;
  /** Its container had exited before this daemon adopted it: its log is read, nothing is left to stop. */
  exited?: true;
}

export interface RunnerInput {
  /** Values stay wrapped: the machine's context never holds one in the clear. */
  session: AssembledSession;
  /** The host it runs on; the local Podman when absent. */
  host?: string;
  /** Set when the container outlived an earlier daemon: the run resumes at the state it was in. */
  adopted?: AdoptedSession;
}

export interface RunnerContext {
  session: AssembledSession;
  host?: string;
  adopted?: AdoptedSession;
  plan: RunPlan;
  stopGraceMs: number;
  /** The run's deadline, from its start (or, adopted, what is left of it). */
  deadlineMs?: number;
  /** How many of plan.secrets exist or may exist: a create cut short may still have made its secret. */
  secretsClaimed: number;
  /** Set once the secrets are known to be gone, so teardown does not remove them again. */
  secretsRemoved: boolean;
  /** The container's name once its create began: a create cut short may still have made it. */
  container?: string;
  /** The run's fate, decided once: the first decision stands. */
  fate?: RunFate;
  /** An exit code to add to a fate decided before the container exited. */
  exitCode?: number;
  /** An adopted container's own credential values, to mask its output with (wrapped). */
  maskValues?: SecretValue[];
  /** Why an adopted session's output is withheld: its values could not be read back. */
  withheldBecause?: string;
  /** Each phase entered, for the timings. */
  phases: { phase: Phase; at: number }[];
  /** How often the container's output was attached to: more than once, the run resumes (host came back). */
  attachments: number;
  /**
   * When the session first lost its host in this outage (performance.now()): daemon.host_down_grace
   * counts from here, however often it is followed again and lost again. Forgotten once it has been
   * followed again for a whole grace period.
   */
  lostSince?: number;
  teardownProblems: string[];
}

export type RunnerEvent =
  | { type: 'cancel' }
  /** The daemon says the session's host stopped answering, or answers again. */
  | { type: 'host.down' }
  | { type: 'host.up' }
  | { type: 'stop'; reason: StopReason }
  | OperationEvent
  | AttachEvent;

function notProvided(name: string): never {
  throw new Error(`runner machine: actor ${name} must be provided (see src/runner/actors.ts)`);
}

/** Runner settings for the definition alone (docs, inspector); the daemon makes its own with runnerMachineFor. */
const DEFINITION_SETTINGS: RunnerSettings = {
  instanceId: '0'.repeat(32),
  stopGraceMs: 10_000,
  workDir: '/var/lib/agentd/work',
};

/** The tag of the runner's states after the setup step reported the command's end. */
const COMMAND_ENDED = 'commandEnded';

const ABORTING =
  'Stopped while podman creates the container: the call is aborted. Podman may have made it anyway, so teardown starts only once the call has returned.';
const RETRYING = 'One transient podman failure must not leave objects behind: wait, then try again.';
/** Why a session whose host restarted under it is abandoned (Podman reset its container: exit code 0). */
const HOST_RESTARTED =
  "it restarted meanwhile: Podman reset the container (created again, or exited with no finish time), so the command did not finish (the exit code 0 Podman gives such a container is not the command's)";

/**
 * How long a stopped container's exit may take to come through the attachment once `podman stop` has
 * returned (the follow's own end, a last read of the log) before teardown goes on without it: an
 * attachment that never ends (a host that answers `inspect` but whose `logs`/`wait` keep failing) must
 * not hold a cancelled or timed-out session, and its slot, for ever.
 */
export const STOP_EXIT_WAIT_MS = 30_000;

const CREATING = { phase: 'creating' } as const;
const CLONING = { phase: 'cloning' } as const;
const RUNNING = { phase: 'running' } as const;

/** The runner machine of a daemon: the names it gives Podman objects and its stop grace are its settings'. */
export function runnerMachineFor(settings: RunnerSettings) {
  // The command's exit while it runs or its output is archived: the status the setup step reported when
  // there is one (after a stop, the container's code is the archiving step's, 137 when Podman killed it).
  const commandExit = exited(
    ({ context, event }) =>
      commandExited(
        event.commandEnd?.status ?? event.exitCode,
        context.session.spec.command[0] ?? '',
        oomOf(context, event),
        context.session.spec.exitCodes,
        event.commandEnd !== undefined,
      ),
    true,
  );
  return setup({
    types: {
      context: {} as RunnerContext,
      events: {} as RunnerEvent,
      input: {} as RunnerInput,
      output: {} as RunResult,
    },
    actors: {
      createSecret: fromCallback<AbortEvent, CreateSecretInput>(() => notProvided('createSecret')),
      createContainer: fromCallback<AbortEvent, CreateContainerInput>(() => notProvided('createContainer')),
      attach: fromCallback<AbortEvent, AttachInput>(() => notProvided('attach')),
      readContainerValues: fromPromise<SecretValue[], ContainerInput>(async () =>
        notProvided('readContainerValues'),
      ),
      copyIn: fromPromise<void, CopyInInput>(async () => notProvided('copyIn')),
      copyOut: fromPromise<void, CopyOutInput>(async () => notProvided('copyOut')),
      screenOutput: fromPromise<void, ScreenOutputInput>(async () => notProvided('screenOutput')),
      /** Whether the container exists; fails while its host does not answer. */
      checkContainer: fromPromise<ContainerCheck, ContainerInput>(async () => notProvided('checkContainer')),
      stopContainer: fromPromise<void, StopInput>(async () => notProvided('stopContainer')),
      removeSecrets: fromPromise<void, RemoveSecretsInput>(async () => notProvided('removeSecrets')),
      removeContainer: fromPromise<void, ContainerInput>(async () => notProvided('removeContainer')),
    },
    delays: {
      // setTimeout fires at once past its bound (2^31-1 ms): a longer wait would end the session at once.
      deadline: ({ context }) => Math.min(MAX_DURATION_MS, context.deadlineMs ?? 0),
      teardownRetry: 500,
      /** What is left of daemon.host_down_grace since the session first lost its host (this outage). */
      hostDownGrace: ({ context }) => {
        const now = performance.now();
        return Math.max(0, (settings.hostDownGraceMs ?? 600_000) - (now - (context.lostSince ?? now)));
      },
      hostRetry: settings.hostRetryMs ?? 10_000,
      /** The whole of daemon.host_down_grace: followed this long again, an outage is over. */
      outageOver: settings.hostDownGraceMs ?? 600_000,
      stopExit: STOP_EXIT_WAIT_MS,
    },
    guards: {
      isAdopted: ({ context }) => context.adopted !== undefined,
      adoptedWhileCloning: ({ context }) => context.adopted?.phase === 'cloning',
      hasDeadline: ({ context }) => context.deadlineMs !== undefined,
      cannotRun: ({ context }) => context.plan.problem !== undefined,
      allSecretsCreated: ({ context }) => context.secretsClaimed >= context.plan.secrets.length,
      noSecretsHeld: ({ context }) => context.secretsClaimed === 0 || context.secretsRemoved,
      noContainer: ({ context }) => context.container === undefined,
      /** One `podman run` creates and starts the container (the local Podman), not create and start. */
      runsInOneCall: ({ context }) => context.plan.mode === 'run' && context.adopted === undefined,
      /** The host is reached over a connection (`url:`), not the local Podman. */
      followsOverConnection: ({ context }) => context.plan.mode === 'create',
      fateDecided: ({ context }) => context.fate !== undefined,
      /** A cancel finds nothing to stop: the container had exited before this daemon adopted it. */
      adoptedExited: ({ context }) => context.adopted?.exited === true,
      lostBefore: ({ context }) => context.lostSince !== undefined,
      containerExists: (_, check: ContainerCheck) => check === 'there',
      containerReset: (_, check: ContainerCheck) => check === 'reset',
      copiesIn: ({ context }) => context.plan.copyIn !== undefined,
      /** Only once the container was started: before, there is no archive to copy. */
      copiesOut: ({ context }) => context.plan.copyOut !== undefined && context.attachments > 0,
    },
    actions: {
      /** Side effect (provided): record and publish a phase change. */
      announcePhase: (_, _params: { phase: Phase }) => {},
      /** Side effect (provided): the container exists; its name goes into the session's record. */
      announceContainer: (_, _params: { container: string }) => {},
      /**
       * Side effect (provided): the podman call that makes the container starts in this step; the session's
       * record says so before it is spawned (actors start after a step's actions), so a record without
       * it had no container for a restarted daemon to miss (recovery runs it again).
       */
      announceContainerCall: () => {},
      /** Side effect (provided): the commit the clone checked out, for the session's record. */
      announceCommit: (_, _params: { commit: string }) => {},
      /** Side effect (provided): the image the container runs, for the session's record. */
      announceImage: (_, _params: ImageInfo) => {},
      /** Side effect (provided): a problem that does not change the outcome, for the log. */
      warn: (_, _params: { message: string; error: unknown }) => {},
      /** Side effect (provided): objects teardown could not remove, for the daemon to remove later. */
      leaveBehind: (_, _params: LeftBehind) => {},
      /**
       * Side effect (provided): a teardown step failed once and is tried again, for the log (not yet a
       * problem: its second failure is the warning).
       */
      noteTeardownRetry: (_, _params: { message: string; error: unknown }) => {},
      /**
       * Side effect (provided): how an adopted session's output is masked, for the log: with the values
       * read back from its container (how many), or withheld (why).
       */
      announceMasking: (_, _params: { values: number } | { error: unknown }) => {},
      enterPhase: assign({
        phases: ({ context }, { phase }: { phase: Phase }) => [
          ...context.phases,
          { phase, at: performance.now() },
        ],
      }),
      claimSecret: assign({ secretsClaimed: ({ context }) => context.secretsClaimed + 1 }),
      countAttachment: assign({ attachments: ({ context }) => context.attachments + 1 }),
      /** The first loss of this outage stands: the grace counts from it. */
      noteLoss: assign({ lostSince: ({ context }) => context.lostSince ?? performance.now() }),
      forgetLoss: assign({ lostSince: undefined }),
      maskWith: assign({ maskValues: (_, values: SecretValue[]) => values }),
      withholdOutput: assign({
        withheldBecause: (_, { error }: { error: unknown }) =>
          `[agentd: output withheld: this session was adopted after a daemon restart, and the credential values its container was given could not be read back from it to mask its output (${error instanceof Error ? error.message : String(error)})]`,
      }),
      claimContainer: assign({ container: ({ context }) => context.plan.container.name }),
      forgetSecrets: assign({ secretsRemoved: true }),
      raiseStop: raise((_, reason: StopReason) => ({ type: 'stop' as const, reason })),
      /** The run's fate; a later decision (a timeout after a cancel, say) does not replace it. */
      decide: assign({ fate: ({ context }, fate: RunFate) => context.fate ?? fate }),
      noteExitCode: assign({ exitCode: (_, exitCode: number) => exitCode }),
      noteTeardownProblem: assign({
        teardownProblems: ({ context }, error: unknown) => [
          ...context.teardownProblems,
          error instanceof Error ? error.message : String(error),
        ],
      }),
    },
  }).createMachine({
    id: 'runner',
    description:
      'One session as one supervised container: create its secrets and container, start it, follow the setup step through the clone to the command, stop it on a cancel or at its deadline, and always tear down what was made.',
    context: ({ input }) => {
      const { session, adopted, host } = input;
      const deadlineMs = adopted ? adopted.remainingMs : session.spec.timeoutMs;
      return {
        session,
        ...(host === undefined ? {} : { host }),
        ...(adopted === undefined ? {} : { adopted, container: adopted.container }),
        plan: planRun(session, settings, host),
        stopGraceMs: settings.stopGraceMs,
        ...(deadlineMs === undefined ? {} : { deadlineMs }),
        secretsClaimed: 0,
        secretsRemoved: false,
        phases: [],
        attachments: 0,
        teardownProblems: [],
      };
    },
    output: ({ context }) => resultOf(context),
    initial: 'route',
    states: {
      route: {
        description:
          'A new session creates its objects first; an adopted one resumes at the phase it was in; one whose credentials Podman would refuse ends before anything is made.',
        always: [
          { guard: 'isAdopted', target: 'live.adopting' },
          {
            guard: 'cannotRun',
            target: 'tearingDown',
            actions: [
              { type: 'enterPhase', params: CREATING },
              { type: 'announcePhase', params: CREATING },
              {
                type: 'decide',
                params: ({ context }) => failed('creating', context.plan.problem),
              },
            ],
          },
          { target: 'live' },
        ],
      },
      live: {
        description:
          "The session's objects exist or are being made. A cancel, or its deadline (a delayed transition), stops it.",
        initial: 'creatingSecrets',
        after: {
          deadline: { guard: 'hasDeadline', actions: { type: 'raiseStop', params: 'timeout' } },
        },
        on: {
          // One adopted after its container exited has nothing to stop (and no deadline): its log decides.
          cancel: { guard: not('adoptedExited'), actions: { type: 'raiseStop', params: 'cancel' } },
        },
        states: {
          adopting: {
            description:
              'The container outlived an earlier daemon. Its output is masked with exactly the credential values it was given, read back from its own root-only copies (through exec while it runs, from the copies Podman keeps on this machine once it exited; none when its label says it was given no secret); when they cannot be read, its output is withheld (fail closed) and the log says why. Then it is followed from the phase it was in.',
            invoke: {
              src: 'readContainerValues',
              input: ({ context }) => ({ container: context.container ?? '', ...hostOf(context) }),
              onDone: [
                {
                  guard: 'adoptedWhileCloning',
                  target: 'attached.progress.cloning',
                  actions: [
                    { type: 'maskWith', params: ({ event }) => event.output },
                    { type: 'announceMasking', params: ({ event }) => ({ values: event.output.length }) },
                  ],
                },
                {
                  target: 'attached.progress.running',
                  actions: [
                    { type: 'maskWith', params: ({ event }) => event.output },
                    { type: 'announceMasking', params: ({ event }) => ({ values: event.output.length }) },
                  ],
                },
              ],
              onError: [
                {
                  guard: 'adoptedWhileCloning',
                  target: 'attached.progress.cloning',
                  actions: [
                    { type: 'withholdOutput', params: ({ event }) => ({ error: event.error }) },
                    { type: 'announceMasking', params: ({ event }) => ({ error: event.error }) },
                  ],
                },
                {
                  target: 'attached.progress.running',
                  actions: [
                    { type: 'withholdOutput', params: ({ event }) => ({ error: event.error }) },
                    { type: 'announceMasking', params: ({ event }) => ({ error: event.error }) },
                  ],
                },
              ],
            },
            on: {
              // The container is stopped as soon as it is attached (the stop region sees the fate).
              stop: {
                actions: {
                  type: 'decide',
                  params: ({ context, event }) =>
                    stopped(
                      event.reason,
                      context.adopted?.phase ?? 'running',
                      context.session.spec.timeoutMs,
                    ),
                },
              },
            },
          },
          creatingSecrets: {
            description: 'One Podman secret per non-empty credential value, created one at a time.',
            tags: ['creating'],
            entry: [
              { type: 'enterPhase', params: CREATING },
              { type: 'announcePhase', params: CREATING },
            ],
            initial: 'next',
            states: {
              next: {
                description: 'Create the next secret, or go on to the container once all exist.',
                always: [
                  {
                    guard: and(['allSecretsCreated', 'runsInOneCall']),
                    target: '#runner.live.attached',
                    // Announced once its setup step says it started: a run that fails made none.
                    actions: ['announceContainerCall', 'claimContainer'],
                  },
                  { guard: 'allSecretsCreated', target: '#runner.live.creatingContainer' },
                  { target: 'creating' },
                ],
              },
              creating: {
                description:
                  'The secret counts as made from here on: a create cut short may still have made it.',
                entry: 'claimSecret',
                invoke: {
                  id: 'createSecret',
                  src: 'createSecret',
                  input: ({ context }) => {
                    const secret = context.plan.secrets[context.secretsClaimed - 1];
                    if (!secret) throw new Error('runner machine: no secret left to create');
                    return {
                      name: secret.name,
                      value: secret.value,
                      labels: context.plan.labels,
                      ...hostOf(context),
                    };
                  },
                },
                initial: 'working',
                states: {
                  working: {
                    description: 'The podman call runs.',
                    on: {
                      'podman.done': { target: '#runner.live.creatingSecrets.next', reenter: true },
                      'podman.failed': {
                        target: '#runner.tearingDown',
                        actions: { type: 'decide', params: ({ event }) => failed('creating', event.error) },
                      },
                      stop: { target: 'finishing', ...stopHere(CREATING) },
                    },
                  },
                  finishing: {
                    description:
                      'Stopped while podman creates the secret: the create is not cut short (Podman 4.3 rewrites its secrets file in place, and a create killed mid-write empties it for every user of the host); teardown starts once it has returned. Its deadline still ends a hung one.',
                    on: {
                      'podman.done': '#runner.tearingDown',
                      'podman.failed': '#runner.tearingDown',
                    },
                  },
                },
              },
            },
          },
          creatingContainer: {
            description:
              'On a host behind a connection: create the container (not started): the setup step as entrypoint, the secrets mounted root-only, the engine-enforced deadline. (On the local Podman, `podman run` creates and starts it in the attachment: one call.)',
            tags: ['creating'],
            entry: ['announceContainerCall', 'claimContainer'],
            invoke: {
              id: 'createContainer',
              src: 'createContainer',
              input: ({ context }) => ({ ...context.plan.container, ...hostOf(context) }),
            },
            initial: 'working',
            states: {
              working: {
                description: 'The podman call runs.',
                on: {
                  'podman.done': [
                    {
                      guard: 'copiesIn',
                      target: '#runner.live.copyingIn',
                      actions: {
                        type: 'announceContainer',
                        params: ({ context }) => ({ container: context.plan.container.name }),
                      },
                    },
                    {
                      target: '#runner.live.attached',
                      actions: {
                        type: 'announceContainer',
                        params: ({ context }) => ({ container: context.plan.container.name }),
                      },
                    },
                  ],
                  'podman.failed': {
                    target: '#runner.tearingDown',
                    actions: { type: 'decide', params: ({ event }) => failed('creating', event.error) },
                  },
                  stop: { target: 'aborting', ...stopHere(CREATING) },
                },
              },
              aborting: {
                description: ABORTING,
                entry: sendTo('createContainer', { type: 'abort' }),
                on: {
                  'podman.done': {
                    target: '#runner.tearingDown',
                    actions: {
                      type: 'announceContainer',
                      params: ({ context }) => ({ container: context.plan.container.name }),
                    },
                  },
                  'podman.failed': '#runner.tearingDown',
                },
              },
            },
          },
          copyingIn: {
            description:
              "On a host that does not see this machine's files (ssh://, tcp://): the request and input files go into the created container under /agentd, root-owned and read-only, before it starts.",
            tags: ['creating'],
            invoke: {
              src: 'copyIn',
              input: ({ context }) => ({
                container: context.plan.container.name,
                dir: context.plan.copyIn?.dir ?? '',
                entries: context.plan.copyIn?.entries ?? [],
                ...hostOf(context),
              }),
              onDone: '#runner.live.attached',
              onError: {
                target: '#runner.tearingDown',
                actions: { type: 'decide', params: ({ event }) => failed('creating', event.error) },
              },
            },
            on: {
              stop: { target: '#runner.tearingDown', ...stopHere(CREATING) },
            },
          },
          attached: {
            description:
              'The container runs and its output is read (`podman run` on the local Podman, which also creates it; without `--rm`, so the exited container stays for adoption until teardown removes it; `start --attach` elsewhere; for an adopted one `logs --follow` and `wait`). Its progress, the secrets and a stop are independent regions; the container exiting ends them all.',
            type: 'parallel',
            on: {
              'container.lost': {
                target: '#runner.tearingDown',
                actions: {
                  type: 'decide',
                  params: ({ context, event }) => failed(phaseOfRun(context), event.error),
                },
              },
              'container.reset': {
                target: '#runner.tearingDown',
                actions: {
                  type: 'decide',
                  params: ({ context }) => hostLost(phaseOfRun(context), context.host, HOST_RESTARTED),
                },
              },
              'setup.commit': {
                actions: { type: 'announceCommit', params: ({ event }) => ({ commit: event.commit }) },
              },
              'container.image': {
                actions: {
                  type: 'announceImage',
                  params: ({ event }) => ({
                    ...(event.id === undefined ? {} : { id: event.id }),
                    ...(event.digest === undefined ? {} : { digest: event.digest }),
                  }),
                },
              },
            },
            states: {
              progress: {
                description:
                  "What the setup step's marker lines said last. An exit decides the outcome by where the session got to.",
                initial: 'starting',
                states: {
                  starting: {
                    description: 'Started; the setup step has not announced itself yet.',
                    tags: ['creating'],
                    on: {
                      'setup.started': [
                        {
                          guard: 'runsInOneCall',
                          target: 'settingUp',
                          actions: {
                            type: 'announceContainer',
                            params: ({ context }) => ({ container: context.plan.container.name }),
                          },
                        },
                        { target: 'settingUp' },
                      ],
                      stop: stopHere(CREATING),
                      'container.exited': exited(({ context, event }) =>
                        event.outputIncomplete
                          ? outputIncomplete('creating', event.exitCode)
                          : startFailed(
                              context.plan.container.name,
                              event.exitCode,
                              event.stderr,
                              context.plan.mode === 'run' ? context.plan.container.image : undefined,
                            ),
                      ),
                    },
                  },
                  settingUp: {
                    description: "The setup step runs as root: it creates the agent's user.",
                    tags: ['creating'],
                    on: {
                      'setup.cloning': 'cloning',
                      stop: stopHere(CREATING),
                      'container.exited': exited(({ context, event }) =>
                        event.outputIncomplete
                          ? outputIncomplete('creating', event.exitCode)
                          : setupFailed(
                              'creating',
                              event.exitCode,
                              event.setupOutput,
                              repoOf(context),
                              oomOf(context, event),
                            ),
                      ),
                    },
                  },
                  cloning: {
                    description: 'The setup step clones the repository as the agent’s user.',
                    tags: ['cloning'],
                    entry: [
                      { type: 'enterPhase', params: CLONING },
                      { type: 'announcePhase', params: CLONING },
                    ],
                    on: {
                      'setup.running': 'running',
                      stop: stopHere(CLONING),
                      // An adopted container that exited while no daemon watched: its log says how far
                      // the setup step got, if it still holds its first lines. Without them, a report of
                      // status 0 is still the command's: the step reports a failed clone or setup with
                      // that step's own non-zero status, so only a command that ran ends `ended 0`.
                      'container.exited': exited(({ context, event }) =>
                        event.adoptedSetup === 'lost'
                          ? event.commandEnd?.status === 0
                            ? commandExited(
                                0,
                                context.session.spec.command[0] ?? '',
                                oomOf(context, event),
                                context.session.spec.exitCodes,
                                true,
                              )
                            : setupUnknown(event.exitCode)
                          : event.outputIncomplete
                            ? outputIncomplete('cloning', event.exitCode)
                            : setupFailed(
                                event.adoptedSetup === 'before-clone' ? 'creating' : 'cloning',
                                event.exitCode,
                                event.setupOutput,
                                repoOf(context),
                                oomOf(context, event),
                              ),
                      ),
                    },
                  },
                  running: {
                    description: "The agent's command runs, unprivileged, in the clone.",
                    tags: ['running'],
                    entry: [
                      { type: 'enterPhase', params: RUNNING },
                      { type: 'announcePhase', params: RUNNING },
                    ],
                    on: {
                      stop: stopHere(RUNNING),
                      'command.ended': 'ended',
                      'container.exited': commandExit,
                    },
                  },
                  ended: {
                    description:
                      "The setup step reported the command's end and archives its output: the daemon refuses a cancel now (the outcome is decided); the deadline still stops the container, but the command's own exit decides the outcome (the container's code after a stop is the archiving step's, 137 when Podman killed it).",
                    tags: ['running', COMMAND_ENDED],
                    on: { 'container.exited': commandExit },
                  },
                },
              },
              secrets: {
                description:
                  'The container holds its own copy of mounted secrets once started, so the secret objects go then.',
                initial: 'held',
                states: {
                  held: {
                    description: 'The secret objects exist (if any).',
                    always: { guard: 'noSecretsHeld', target: 'removed' },
                    on: { 'setup.started': 'removing' },
                  },
                  removing: {
                    description:
                      'Removed while the container runs (it has its own copy since it started). Never cut short: when the container exits first, teardown joins this same call instead of removing again, and retries if it fails.',
                    invoke: {
                      src: 'removeSecrets',
                      input: ({ context }) => ({ names: claimedSecrets(context), ...hostOf(context) }),
                      onDone: { target: 'removed', actions: 'forgetSecrets' },
                      onError: {
                        target: 'kept',
                        actions: {
                          type: 'warn',
                          params: ({ event }) => ({
                            message: 'secret removal after start failed; teardown retries',
                            error: event.error,
                          }),
                        },
                      },
                    },
                  },
                  removed: { description: 'No secret object of the session is left.' },
                  kept: { description: 'Left for teardown to remove.' },
                },
              },
              stop: {
                description:
                  'A cancel or the deadline stops the container: SIGTERM, then SIGKILL after the grace period. The exit that follows ends the run.',
                initial: 'idle',
                states: {
                  idle: {
                    description:
                      'Nobody asked the container to stop (a stop decided while adopting it stops it at once).',
                    always: { guard: 'fateDecided', target: 'stopping' },
                    on: {
                      stop: [
                        {
                          // Its setup step has not said it started: the container may not exist yet.
                          guard: and(['runsInOneCall', stateIn('#runner.live.attached.progress.starting')]),
                          target: 'cuttingShort',
                        },
                        { target: 'stopping' },
                      ],
                    },
                  },
                  cuttingShort: {
                    description:
                      '`podman run` has not started the setup step yet, and `podman stop` could miss a container it is still creating: the run itself is cut short, and teardown removes whatever it made (its forced removal stops a container it had started).',
                    entry: sendTo('attach', { type: 'abort' }),
                  },
                  stopping: {
                    description:
                      '`podman stop` with the grace period; the exit comes through the attachment.',
                    invoke: {
                      src: 'stopContainer',
                      input: ({ context }) => ({
                        container: context.container ?? context.plan.container.name,
                        // The setup step kills the command at the end of the grace period and then
                        // archives its output: Podman's SIGKILL waits for that.
                        graceSeconds: Math.ceil(context.stopGraceMs / 1000) + OUTPUT_COPY_SECONDS,
                        ...hostOf(context),
                      }),
                      onDone: 'stopped',
                      onError: {
                        // Teardown removes it by force: nothing is left running.
                        target: '#runner.tearingDown',
                        actions: {
                          type: 'warn',
                          params: ({ event }) => ({
                            message: 'stopping the container failed; teardown removes it',
                            error: event.error,
                          }),
                        },
                      },
                    },
                  },
                  stopped: {
                    description:
                      'Stopped; waiting for the attachment to report the exit, for a bounded time: an attachment that cannot follow the container (its host answers `inspect`, but `logs`/`wait` keep failing) does not hold the session: teardown removes the container and the stop decided the outcome.',
                    after: {
                      stopExit: {
                        target: '#runner.tearingDown',
                        actions: {
                          type: 'warn',
                          params: () => ({
                            message: `the stopped container's exit did not come through its attachment within ${STOP_EXIT_WAIT_MS / 1000}s; teardown removes it`,
                            error: undefined,
                          }),
                        },
                      },
                    },
                  },
                },
              },
              connection: {
                description:
                  "Following the container's output. A connection to its host that drops, or the host going down, does not end the session: the container runs on and is followed again once it answers (its output from where the log ends), or the session is settled `abandoned` after daemon.host_down_grace.",
                initial: 'following',
                states: {
                  following: {
                    description:
                      '`start --attach` (or, adopted or resumed, `logs --follow` and `wait`). Over a remote connection the end of the stream is checked with the engine before it counts as an exit. Followed again after a loss for a whole grace period, the outage is over: a later loss starts a grace period of its own (a follow that fails after a while never restarts it).',
                    entry: 'countAttachment',
                    after: { outageOver: { guard: 'lostBefore', actions: 'forgetLoss' } },
                    invoke: {
                      id: 'attach',
                      src: 'attach',
                      input: ({ context }) => attachInput(context),
                    },
                    on: {
                      'container.unreachable': {
                        target: 'lost',
                        actions: {
                          type: 'warn',
                          params: ({ event }) => ({
                            message: 'lost the connection to the host; the container runs on, waiting for it',
                            error: event.error,
                          }),
                        },
                      },
                      // A local attachment is podman's own child: a probe that fails says nothing of it
                      // (its own end does). Over a connection, the connection is what the probe lost.
                      'host.down': { guard: 'followsOverConnection', target: 'lost' },
                    },
                  },
                  lost: {
                    description:
                      'The host does not answer. Waiting for it (the daemon says when it is back; it is also asked every probe interval); after the grace period, counted from the first loss of this outage (followed again and lost again, it does not start over), the session is `abandoned` and the host reconciles its container away when it returns.',
                    entry: 'noteLoss',
                    after: {
                      hostDownGrace: {
                        target: '#runner.tearingDown',
                        actions: {
                          type: 'decide',
                          params: ({ context }) =>
                            hostLost(
                              phaseOfRun(context),
                              context.host,
                              `it did not answer again within ${durationSetting(settings.hostDownGraceMs ?? 600_000)} (daemon.host_down_grace); the container, if it still runs, is removed when the host is reconciled`,
                            ),
                        },
                      },
                    },
                    initial: 'waiting',
                    states: {
                      waiting: {
                        description: 'Until the host is back, or the next look.',
                        after: { hostRetry: 'checking' },
                        on: { 'host.up': 'checking' },
                      },
                      checking: {
                        description:
                          'Does the host answer, and is the container still there? Then it is followed again; gone, the session is `abandoned`.',
                        invoke: {
                          src: 'checkContainer',
                          input: ({ context }) => ({
                            container: context.container ?? context.plan.container.name,
                            ...hostOf(context),
                          }),
                          onDone: [
                            {
                              guard: { type: 'containerExists', params: ({ event }) => event.output },
                              target: '#runner.live.attached.connection.following',
                            },
                            {
                              guard: { type: 'containerReset', params: ({ event }) => event.output },
                              target: '#runner.tearingDown',
                              actions: {
                                type: 'decide',
                                params: ({ context }) =>
                                  hostLost(phaseOfRun(context), context.host, HOST_RESTARTED),
                              },
                            },
                            {
                              target: '#runner.tearingDown',
                              actions: {
                                type: 'decide',
                                params: ({ context }) =>
                                  hostLost(
                                    phaseOfRun(context),
                                    context.host,
                                    'when it answered again, the container was gone',
                                  ),
                              },
                            },
                          ],
                          onError: 'waiting',
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
      tearingDown: {
        description:
          'Remove everything the session made, whatever happened: its secrets and its container, side by side, each tried twice. A problem changes a success into an error; nothing is left in Podman otherwise. The fate is decided: a cancel changes nothing.',
        tags: ['tearing_down'],
        entry: [
          { type: 'enterPhase', params: { phase: 'tearing_down' } },
          { type: 'announcePhase', params: { phase: 'tearing_down' } },
        ],
        type: 'parallel',
        states: {
          secrets: {
            description: 'Remove the secrets.',
            initial: 'check',
            states: {
              check: {
                description: 'Nothing to do when the session made none.',
                always: [{ guard: 'noSecretsHeld', target: 'removed' }, { target: 'removing' }],
              },
              ...removedInTwoTries(
                'removeSecrets',
                ({ context }) => ({ names: claimedSecrets(context), ...hostOf(context) }),
                ({ context }) => ({ ...hostOf(context), containers: [], secrets: claimedSecrets(context) }),
              ),
            },
          },
          container: {
            description: 'Remove the container.',
            initial: 'check',
            states: {
              check: {
                description:
                  'Nothing to do when the session made none; its output archive comes out first from a host that does not see this machine.',
                always: [
                  { guard: 'noContainer', target: 'removed' },
                  { guard: 'copiesOut', target: 'collecting' },
                  { target: 'screening' },
                ],
              },
              collecting: {
                description:
                  "The setup step's archive of /agentd/out, copied out of the exited container (podman cp) to where the sealed record reads it. Without one, the record says the output is missing.",
                invoke: {
                  src: 'copyOut',
                  input: ({ context }) => ({
                    container: context.container ?? '',
                    from: context.plan.copyOut?.from ?? '',
                    to: context.plan.copyOut?.to ?? '',
                    ...hostOf(context),
                  }),
                  onDone: 'screening',
                  onError: {
                    target: 'screening',
                    actions: {
                      type: 'warn',
                      params: ({ event }) => ({
                        message: 'could not copy the output archive out of the container',
                        error: event.error,
                      }),
                    },
                  },
                },
              },
              screening: {
                description:
                  "The output archive searched for the session's credential values (as its output is masked for them): one found, or values not known, and the archive is withheld, with a note the sealed record shows instead; found clean, it is marked so (the seal keeps no archive without the mark).",
                invoke: {
                  src: 'screenOutput',
                  input: ({ context }) => ({
                    ...context.plan.output,
                    values: maskValuesOf(context),
                  }),
                  onDone: 'removing',
                  onError: {
                    target: 'removing',
                    actions: {
                      type: 'warn',
                      params: ({ event }) => ({
                        message: 'could not search the output archive for credential values',
                        error: event.error,
                      }),
                    },
                  },
                },
              },
              ...removedInTwoTries(
                'removeContainer',
                ({ context }) => ({ container: context.container ?? '', ...hostOf(context) }),
                ({ context }) => ({ ...hostOf(context), containers: [context.container ?? ''], secrets: [] }),
              ),
            },
          },
        },
        onDone: 'done',
      },
      done: {
        description: 'Torn down; the output is the run result.',
        type: 'final',
      },
    },
  });
}

/**
 * A stop decides the fate by the phase the session is in: in a podman call of the creating phase the
 * transition names where the machine goes; while attached the stop region stops the container.
 */
function stopHere(phase: { phase: Phase }) {
  return {
    actions: {
      type: 'decide',
      params: ({ context, event }: { context: RunnerContext; event: { reason: StopReason } }) =>
        stopped(event.reason, phase.phase, context.session.spec.timeoutMs),
    },
  } as const;
}

type ExitedEvent = Extract<RunnerEvent, { type: 'container.exited' }>;

/**
 * The container exited: after a stop the stop's fate stands, with the exit code once the command ran
 * (`commandRan`): before that the code is the setup step's or podman's own (a `podman run` cut short
 * while it creates the container exits 0, or -1 when killed at once), never the command's. Otherwise `fate` decides.
 */
function exited(fate: (args: { context: RunnerContext; event: ExitedEvent }) => RunFate, commandRan = false) {
  return [
    {
      guard: 'fateDecided',
      target: '#runner.tearingDown',
      actions: commandRan
        ? [
            {
              type: 'noteExitCode',
              // The command's status as the setup step reported it: the container's code is Podman's
              // SIGKILL (137) when the stop's grace ran out while the step archived the output.
              params: ({ event }: { event: ExitedEvent }) => event.commandEnd?.status ?? event.exitCode,
            } as const,
          ]
        : [],
    },
    { target: '#runner.tearingDown', actions: { type: 'decide', params: fate } },
  ] as const;
}

/** Podman objects of a session that its teardown could not remove, on its host (none: the local one). */
export interface LeftBehind {
  host?: string;
  containers: string[];
  secrets: string[];
}

/**
 * A teardown step tried twice with `teardownRetry` between: a transient podman failure must not leave
 * an object behind. Ends in `removed`, or in `failed` with the problem noted for the run's result and
 * the objects left behind for the daemon.
 */

function removedInTwoTries<Src extends 'removeSecrets' | 'removeContainer', Input>(
  src: Src,
  input: (args: { context: RunnerContext }) => Input,
  leftBehind: (args: { context: RunnerContext }) => LeftBehind,
) {
  const attempt = <OnError>(description: string, onError: OnError) =>
    ({ description, invoke: { src, input, onDone: 'removed', onError } }) as const;
  return {
    removing: attempt('First try.', {
      target: 'retrying',
      actions: {
        type: 'noteTeardownRetry',
        params: ({ event }: { event: { error: unknown } }) => ({
          message: 'teardown step failed; trying once more',
          error: event.error,
        }),
      } as const,
    }),
    retrying: {
      description: RETRYING,
      after: { teardownRetry: 'removingAgain' },
    },
    removingAgain: attempt('Second and last try.', {
      target: 'failed',
      actions: [
        {
          type: 'warn',
          params: ({ event }: { event: { error: unknown } }) => ({
            message: 'teardown failed',
            error: event.error,
          }),
        },
        {
          type: 'noteTeardownProblem',
          params: ({ event }: { event: { error: unknown } }) => event.error,
        },
        { type: 'leaveBehind', params: leftBehind },
      ] as const,
    }),
    removed: { description: 'Gone.', type: 'final' },
    failed: {
      description: 'Still there: the run reports it, and the daemon removes it once its host answers again.',
      type: 'final',
    },
  } as const;
}

/**
 * What a run may have made and not removed yet: for a runner that failed (an exception in one of its
 * actions), whose teardown will not run, so that the daemon removes it instead.
 */
export function leftByRunner(context: RunnerContext): LeftBehind {
  return {
    ...hostOf(context),
    containers: context.container === undefined ? [] : [context.container],
    secrets: context.secretsRemoved ? [] : claimedSecrets(context),
  };
}

/** The host the session runs on, for each Podman operation (none: the local Podman). */
function hostOf(context: RunnerContext): { host?: string } {
  return context.host === undefined ? {} : { host: context.host };
}

function claimedSecrets(context: RunnerContext): string[] {
  return context.plan.secrets.slice(0, context.secretsClaimed).map((s) => s.name);
}

/** "out of memory (limit 2g)" when the setup step saw the OOM killer strike in the container. */
function oomOf(context: RunnerContext, event: ExitedEvent): string | undefined {
  const memory = (context.session.spec.resources ?? defaultResources()).memory.text;
  return outOfMemoryReason(event.commandEnd, memory);
}

function repoOf(context: RunnerContext): string {
  return context.session.invocation.repoUrl;
}

function attachInput(context: RunnerContext): AttachInput {
  const { session, adopted, plan } = context;
  const mask = maskValuesOf(context);
  // Attached before (its host went away and came back): followed from where its log ends.
  const resumed = adopted === undefined && context.attachments > 1;
  return {
    sessionId: session.invocation.sessionId,
    container: context.container ?? plan.container.name,
    // The first attachment of a new session on the local Podman creates the container too.
    ...(plan.mode === 'run' && adopted === undefined && context.attachments === 1
      ? { run: plan.container }
      : {}),
    marker: adopted ? '' : plan.marker,
    mask,
    ...hostOf(context),
    ...(context.withheldBecause === undefined ? {} : { withheldBecause: context.withheldBecause }),
    notices: adopted || resumed ? [] : [...(session.invocation.notices ?? [])],
    ...(adopted === undefined ? {} : { adopted: { phase: adopted.phase } }),
    ...(resumed ? { adopted: { phase: attachedPhase(context) } } : {}),
  };
}

/**
 * The values the session's output is masked with: a new session's, those it was given; an adopted
 * one's, those its container holds (undefined when they could not be read back).
 */
function maskValuesOf(context: RunnerContext): SecretValue[] | undefined {
  const { session, adopted } = context;
  if (adopted) return context.maskValues;
  const given = session.spec.credentials.map((c) => c.value);
  if (session.invocation.repoToken) given.push(session.invocation.repoToken);
  return given;
}

/** The phase of a run that is attached (never tearing down: that comes after). */
function attachedPhase(context: RunnerContext): 'creating' | 'cloning' | 'running' {
  const phase = phaseOfRun(context);
  return phase === 'tearing_down' ? 'running' : phase;
}

/** The phase the run was last announced in. */
function phaseOfRun(context: RunnerContext): Phase {
  return context.phases[context.phases.length - 1]?.phase ?? 'creating';
}

/**
 * The outcome a run has once its teardown begins (the fate, with the exit code noted after a stop): the
 * record keeps it while the teardown runs, so a daemon that dies then is followed by one that settles the
 * session as this one would have, not by the exit code of a container a stop or a failed setup ended.
 */
export function decidedOf(context: RunnerContext): RunFate {
  const fate: RunFate = context.fate ?? {
    outcome: 'error',
    phase: phaseOfRun(context),
    message: 'the run ended without an outcome',
  };
  if (fate.exitCode === undefined && context.exitCode !== undefined) {
    // A cancelled or timed-out command ends by the stop's signal: say which, not only 128 + N.
    const signal = fate.signal ?? signalOfExit(context.exitCode);
    return { ...fate, exitCode: context.exitCode, ...(signal === undefined ? {} : { signal }) };
  }
  return fate;
}

/** The run result: the decided fate, a teardown problem turning a success into an error, and the timings. */
function resultOf(context: RunnerContext): RunResult {
  let fate = decidedOf(context);
  if (context.teardownProblems.length > 0 && fate.outcome === 'succeeded') {
    fate = {
      ...fate,
      outcome: 'error',
      message: `teardown failed: ${context.teardownProblems.join('; ')}`,
    };
  }
  return { ...fate, timings: timingsOf(context.phases) };
}

function timingsOf(phases: RunnerContext['phases']): RunResult['timings'] {
  const timings: RunResult['timings'] = {};
  const now = performance.now();
  phases.forEach((entry, i) => {
    const end = phases[i + 1]?.at ?? now;
    timings[entry.phase] = Math.round((timings[entry.phase] ?? 0) + end - entry.at);
  });
  return timings;
}

/** The definition, for the statechart docs, the inspector and placeholders; the daemon uses its own settings. */
export const runnerMachine = runnerMachineFor(DEFINITION_SETTINGS);
export type RunnerActor = ActorRefFrom<typeof runnerMachine>;

/** Whether the command has ended (its end reported; the output may still be being archived). */
export function commandEndedIn(snapshot: { hasTag(tag: string): boolean }): boolean {
  return snapshot.hasTag(COMMAND_ENDED);
}

/** The phase a runner snapshot is in, from its state's tags. */
export function runPhaseOf(snapshot: { hasTag(tag: string): boolean }): Phase | undefined {
  for (const phase of ['tearing_down', 'running', 'cloning', 'creating'] as const) {
    if (snapshot.hasTag(phase)) return phase;
  }
  return undefined;
}
