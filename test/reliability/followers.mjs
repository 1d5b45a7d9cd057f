// Many followers in one process, for the hostile-output suite: the test stops this process
// (SIGSTOP) so that none of them reads, then lets it go on (SIGCONT) and reads the summary.
//
//   node followers.mjs SOCKET COUNT SESSION_ID...
//
// Each connection sends `logs --follow` for one of the sessions (round robin) and keeps what an
// honest client would check: every line is whole JSON, sequence numbers only grow, whether it got
// a skip marker, the outcome, and how the connection ended. Prints `ready` once every connection
// has had its first reply, and one JSON summary line once all have ended (or after SUMMARY_AFTER_MS).
import { connect } from 'node:net';

const [socketPath, countText, ...sessions] = process.argv.slice(2);
const count = Number(countText);
const SUMMARY_AFTER_MS = Number(process.env.SUMMARY_AFTER_MS ?? 120_000);
const results = [];
let firstReplies = 0;
let ended = 0;

for (let i = 0; i < count; i++) {
  const sessionId = sessions[i % sessions.length];
  const result = {
    sessionId,
    messages: 0,
    unparseable: 0,
    seqBackwards: 0,
    skippedMarkers: 0,
    skippedLines: 0,
    outcome: false,
    ended: false,
    trailingPartial: 0,
  };
  results.push(result);
  const socket = connect(socketPath);
  let partial = '';
  let lastSeq = 0;
  let sawFirst = false;
  socket.on('data', (chunk) => {
    const text = partial + chunk.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') continue;
      let reply;
      try {
        reply = JSON.parse(line);
      } catch {
        result.unparseable++;
        continue;
      }
      result.messages++;
      if (!sawFirst) {
        sawFirst = true;
        if (++firstReplies === count) process.stdout.write('ready\n');
      }
      if (reply.type === 'output' && reply.skipped) {
        result.skippedMarkers++;
        result.skippedLines += reply.skipped.count;
      } else if (reply.type === 'output' && typeof reply.seq === 'number') {
        if (reply.seq <= lastSeq) result.seqBackwards++;
        lastSeq = reply.seq;
      } else if (reply.type === 'outcome') {
        result.outcome = true;
      }
    }
  });
  const done = () => {
    if (result.ended) return;
    result.ended = true;
    result.trailingPartial = partial.length;
    if (++ended === count) summary();
  };
  socket.on('end', done);
  socket.on('close', done);
  socket.on('error', done);
  socket.write(`${JSON.stringify({ v: 1, type: 'logs', sessionId, follow: true })}\n`);
}

function summary() {
  process.stdout.write(`${JSON.stringify(results)}\n`);
  process.exit(0);
}
setTimeout(summary, SUMMARY_AFTER_MS).unref();
process.on('SIGTERM', summary);
