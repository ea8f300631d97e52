// Running commands and talking HTTP over a unix socket, timed.
import { spawn } from "node:child_process";
import { request } from "node:http";

/** Children still running, so that an interrupt can end them. */
export const running = new Set();

/**
 * Runs cmd with args; resolves { code, stdout, stderr, ms } (never rejects on a non-zero exit).
 * opts: env, input (string for stdin), timeoutMs (SIGKILL after; code becomes "timeout").
 */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, opts.timeoutMs)
      : null;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (e) => {
      stderr += String(e);
    });
    child.on("close", (code, signal) => {
      const ms = performance.now() - t0;
      if (timer) clearTimeout(timer);
      running.delete(child);
      resolve({ code: timedOut ? "timeout" : (code ?? signal), stdout, stderr, ms });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/** HTTP request over a unix socket; resolves { status, body, json, ms }; rejects on socket errors. */
export function http(socketPath, method, path, body, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: { Host: "localhost", ...(data ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, body: text, json, ms: performance.now() - t0 });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${path}`)));
    req.on("error", reject);
    req.end(data);
  });
}

/** True when something answers GET /1.0 on the socket. */
export async function answers(socketPath) {
  try {
    const r = await http(socketPath, "GET", "/1.0", undefined, 3000);
    return r.status === 200;
  } catch {
    return false;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
