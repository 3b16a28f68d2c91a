// Enqueue an aioq job from Node.js with the official NATS client (npm packages
// "@nats-io/transport-node", "@nats-io/jetstream" and "@nats-io/kv"), and optionally follow
// it: its lifecycle events and its stored result.
//
// A job is a JSON object published with JetStream on <prefix>.jobs.<queue>; only
// "task" is required (docs/protocol.md, docs/asyncapi.json). Any Python worker of the app runs it:
//
//   aioq worker examples.tasks:app -q email                              # the Python side
//   npm ci --prefix examples/node                                         # once
//   NATS_URL=nats://127.0.0.1:4222 node examples/node/publish.mjs         # enqueue
//   NATS_URL=nats://127.0.0.1:4222 node examples/node/publish.mjs --wait  # enqueue and follow
//
// Arguments: [--wait] [task] [JSON array of arguments]; environment: NATS_URL, AIOQ_PREFIX
// (default "aioq"), AIOQ_QUEUE (default "email"), AIOQ_WAIT_SECONDS (default 30).
// Prints one JSON line: the job id and where JetStream stored it. With --wait, also one line
// per event of the job ({"event": ...}) and, last, its record with the result ({"record": ...}).
// An event can come before the first line: the job may start before the publish is acknowledged.

import { randomUUID } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const prefix = process.env.AIOQ_PREFIX ?? "aioq";
const queue = process.env.AIOQ_QUEUE ?? "email";
const waitSeconds = Number(process.env.AIOQ_WAIT_SECONDS ?? "30");
const argv = process.argv.slice(2);
const wait = argv[0] === "--wait";
const [task = "send_email", argsJson = '["ada@example.com", "hello from Node.js"]'] = wait
  ? argv.slice(1)
  : argv;

// States after which a job changes no more (docs/protocol.md, JobRecord.state).
const TERMINAL = new Set(["succeeded", "failed", "expired", "aborted"]);

// Job ids are 1-128 of A-Za-z0-9_=/- ; the worker passes it to the task as ctx.job_id.
const jobId = `node-${randomUUID()}`;
const job = { task, args: JSON.parse(argsJson) };

// Prints the job's events until one is terminal. Events are not stored: subscribe first.
async function followEvents(sub) {
  for await (const msg of sub) {
    const event = msg.json();
    if (event.id !== jobId) continue;
    console.log(JSON.stringify({ event }));
    if (TERMINAL.has(event.kind)) return;
  }
}

// Watches the job's record (key = job id in the <prefix>-results bucket) until it is final.
async function finalRecord(nc) {
  const kv = await new Kvm(nc).open(`${prefix}-results`);
  const updates = await kv.watch({ key: jobId });
  for await (const entry of updates) {
    if (entry.operation !== "PUT") continue;
    const record = entry.json();
    if (TERMINAL.has(record.state)) {
      updates.stop();
      return record;
    }
  }
  throw new Error(`the watch of job ${jobId} ended before the job finished`);
}

// Resolves as `promise` does, or fails once `seconds` have passed.
async function within(seconds, promise) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`job ${jobId} did not finish in ${seconds} s`)), seconds * 1000);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

const nc = await connect({ servers: url, name: "aioq-node-publisher" });
try {
  const sub = wait ? nc.subscribe(`${prefix}.events.${queue}.*`) : null;
  const events = sub ? followEvents(sub) : null;
  const js = jetstream(nc);
  // Every job of a queue shares the queue's subject; the job id as the message id, so a
  // publish retried within two minutes is stored once.
  const ack = await js.publish(`${prefix}.jobs.${queue}`, JSON.stringify(job), {
    msgID: jobId,
  });
  console.log(
    JSON.stringify({ id: jobId, queue, stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }),
  );
  if (wait) {
    await within(waitSeconds, events);
    sub.unsubscribe();
    const record = await within(waitSeconds, finalRecord(nc));
    console.log(JSON.stringify({ record }));
    if (record.state !== "succeeded") process.exitCode = 1;
  }
} finally {
  await nc.drain();
}
