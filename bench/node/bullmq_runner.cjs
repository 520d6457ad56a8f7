// BullMQ-Node for bench/redis_peers.py: one measurement per process, same protocol as
// bench/redis_peers_runners.py (progress on stderr, one "RESULT {json}" line on stdout).
//
//   NODE_PATH=bench/.scratch/node_modules node bench/node/bullmq_runner.cjs ACTION \
//       --url redis://127.0.0.1:PORT/0 [--jobs N] [--concurrency C] [--rate R] [--timeout T]
//
// ACTION: enqueue-one | enqueue-bulk | drain | serve | produce | waiting-memory. Timestamps come from
// process.hrtime (CLOCK_MONOTONIC, the clock of Python's time.perf_counter on Linux).
"use strict";

const { Queue, Worker } = require("bullmq");

const QUEUE = "bench";

class BenchError extends Error {}

function now() {
  return Number(process.hrtime.bigint()) / 1e9; // seconds
}

function parseArgs(argv) {
  const opts = { jobs: 20000, concurrency: 10, rate: 500, timeout: 300 };
  const action = argv[0];
  for (let k = 1; k < argv.length; k += 2) {
    const key = argv[k].replace(/^--?/, "");
    const value = argv[k + 1];
    if (key === "url") opts.url = value;
    else if (key === "jobs" || key === "n") opts.jobs = Number(value);
    else if (key === "concurrency" || key === "c") opts.concurrency = Number(value);
    else if (key === "rate") opts.rate = Number(value);
    else if (key === "timeout") opts.timeout = Number(value);
    else if (key === "seconds") continue;
    else throw new BenchError(`unknown option ${argv[k]}`);
  }
  if (!opts.url) throw new BenchError("--url is required");
  return { action, opts };
}

function connectionOf(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };
}

// Counts job bodies and "completed" events; records pickup latencies.
class Tally {
  constructor(target) {
    this.target = target;
    this.ran = 0;
    this.seen = new Set(); // distinct jobs (by data.i), so a job run twice is a duplicate
    this.finishedIds = new Set();
    this.latencies = [];
    this.ranAll = new Promise((resolve) => (this._ranAll = resolve));
    this.finishedAll = new Promise((resolve) => (this._finishedAll = resolve));
  }
  get finished() {
    return this.finishedIds.size;
  }
  get duplicates() {
    return this.ran - this.seen.size;
  }
  body(data) {
    if (data.ts) this.latencies.push(now() - data.ts);
    this.ran += 1;
    this.seen.add(data.i);
    if (this.seen.size >= this.target) this._ranAll();
  }
  finish(id) {
    this.finishedIds.add(id);
    if (this.finished >= this.target) this._finishedAll();
  }
  async wait(promise, timeout, what) {
    let timer;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new BenchError(
        `timeout after ${timeout}s: ${this.ran} bodies ran, ${this.finished} finished,` +
        ` expected ${this.target} ${what}`)), timeout * 1000);
    });
    try {
      await Promise.race([promise, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function makeWorker(opts, tally) {
  // Defaults otherwise (removeOnComplete: false, drainDelay 5 s, stalled checks on).
  const worker = new Worker(QUEUE, async (job) => tally.body(job.data), {
    connection: connectionOf(opts.url),
    concurrency: opts.concurrency,
  });
  worker.on("completed", (job) => tally.finish(job.id)); // after moveToCompleted
  worker.on("failed", (job, err) => console.error(`job failed: ${err}`));
  return worker;
}

async function fill(queue, n) {
  for (let start = 0; start < n; start += 10000) {
    const jobs = [];
    for (let i = start; i < Math.min(n, start + 10000); i++) {
      jobs.push({ name: "noop", data: { i, ts: 0 } });
    }
    await queue.addBulk(jobs);
  }
}

async function expectWaiting(queue, n) {
  const counts = await queue.getJobCounts("wait");
  if (counts.wait !== n) throw new BenchError(`bullmq-node: ${counts.wait} waiting, expected ${n}`);
}

function summarize(values) {
  const ordered = [...values].sort((a, b) => a - b);
  const pct = (p) => ordered[Math.max(0, Math.ceil((p / 100) * ordered.length) - 1)];
  return { p50: pct(50), p90: pct(90), p99: pct(99), max: ordered[ordered.length - 1] };
}

const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

async function act(action, opts, queue) {
  const n = opts.jobs;
  if (action === "enqueue-one") {
    const start = now();
    for (let i = 0; i < n; i++) await queue.add("noop", { i, ts: 0 });
    const seconds = now() - start;
    await expectWaiting(queue, n);
    return { seconds, jobs: n };
  }
  if (action === "enqueue-bulk") {
    const start = now();
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push({ name: "noop", data: { i, ts: 0 } });
    await queue.addBulk(jobs);
    const seconds = now() - start;
    await expectWaiting(queue, n);
    return { seconds, jobs: n };
  }
  if (action === "drain") {
    const fillStart = now();
    await fill(queue, n);
    await expectWaiting(queue, n);
    console.error(`  bullmq-node: ${n} jobs enqueued in ${(now() - fillStart).toFixed(1)}s (untimed)`);
    const tally = new Tally(n);
    const start = now();
    const worker = makeWorker(opts, tally);
    await tally.wait(tally.finishedAll, opts.timeout, "jobs finished");
    const seconds = now() - start;
    await worker.close();
    const counts = await queue.getJobCounts("wait", "active", "delayed", "completed", "failed");
    if (tally.seen.size !== n || counts.completed !== n || counts.failed) {
      throw new BenchError(`bullmq-node drain: ran=${tally.ran} counts=${JSON.stringify(counts)}`);
    }
    const unfinished = counts.wait + counts.active + counts.delayed;
    return { seconds, jobs: n, ran: tally.ran, duplicates: tally.duplicates, unfinished };
  }
  if (action === "serve") {
    const tally = new Tally(n);
    const worker = makeWorker(opts, tally);
    await worker.waitUntilReady();
    await sleep(1.0);
    console.log("READY");
    try {
      await tally.wait(tally.ranAll, opts.timeout, "job bodies run");
    } finally {
      await worker.close();
    }
    if (tally.seen.size !== n) throw new BenchError(`bullmq-node serve: ${tally.seen.size} jobs ran`);
    return { jobs: n, latency: summarize(tally.latencies), duplicates: tally.duplicates };
  }
  if (action === "waiting-memory") {
    const pad = "x".repeat(400); // PAD in bench/redis_peers_runners.py
    for (let start = 0; start < n; start += 10000) {
      const jobs = [];
      for (let i = start; i < Math.min(n, start + 10000); i++) {
        jobs.push({ name: "noop", data: { i, ts: 0, pad } });
      }
      await queue.addBulk(jobs);
    }
    await expectWaiting(queue, n);
    return { jobs: n, pad: 400 };
  }
  if (action === "produce") {
    const start = now();
    let late = 0;
    for (let i = 0; i < n; i++) {
      const delay = start + i / opts.rate - now();
      if (delay > 0) await sleep(delay);
      else late = Math.max(late, -delay);
      await queue.add("noop", { i, ts: now() });
    }
    const seconds = now() - start;
    return { jobs: n, seconds, rate: n / seconds, max_late_s: late };
  }
  throw new BenchError(`unknown action ${action}`);
}

async function main() {
  const { action, opts } = parseArgs(process.argv.slice(2));
  const queue = new Queue(QUEUE, { connection: connectionOf(opts.url) });
  try {
    const result = await act(action, opts, queue);
    console.log("RESULT " + JSON.stringify(result));
  } finally {
    await queue.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err instanceof BenchError ? `error: ${err.message}` : err);
    process.exit(1);
  },
);
