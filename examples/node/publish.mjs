// Enqueue an aioq job from Node.js with the official NATS client (npm packages
// "@nats-io/transport-node" and "@nats-io/jetstream").
//
// A job is a JSON object published with JetStream on <prefix>.jobs.<queue>; only
// "task" is required (docs/protocol.md). Any Python worker of the app runs it:
//
//   aioq worker examples.tasks:app -q email                       # the Python side
//   npm ci --prefix examples/node                                  # once
//   NATS_URL=nats://127.0.0.1:4222 node examples/node/publish.mjs  # enqueue
//
// Arguments: [task] [JSON array of arguments]; environment: NATS_URL, AIOQ_PREFIX (default
// "aioq"), AIOQ_QUEUE (default "email"). Prints the job id and where JetStream stored it.

import { randomUUID } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const prefix = process.env.AIOQ_PREFIX ?? "aioq";
const queue = process.env.AIOQ_QUEUE ?? "email";
const [task = "send_email", argsJson = '["ada@example.com", "hello from Node.js"]'] =
  process.argv.slice(2);

// Job ids are 1-128 of A-Za-z0-9_=/- ; the worker passes it to the task as ctx.job_id.
const jobId = `node-${randomUUID()}`;
const job = { task, args: JSON.parse(argsJson) };

const nc = await connect({ servers: url, name: "aioq-node-publisher" });
try {
  const js = jetstream(nc);
  // One subject per job, so the job can be found (and removed) by its id; the id as the
  // message id, so a publish retried within two minutes is stored once.
  const ack = await js.publish(`${prefix}.jobs.${queue}`, JSON.stringify(job), {
    msgID: jobId,
  });
  console.log(
    JSON.stringify({ id: jobId, queue, stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }),
  );
} finally {
  await nc.drain();
}
